// Socket.IO peer for the WaaS load test (not part of CI).
//
// The same pub/sub scenario as WaaS, in the idiomatic Socket.IO way:
//   emit("subscribe", channel, ack)            -> socket.join(channel), ack()
//   emit("publish", {channel, event, data}, ack) -> io.to(channel).emit(event, data), ack()
//
// Usage: node server.js [PORT]   (or PORT / HOST env; PORT 0 picks a free port)
// Prints `listening on HOST:PORT` once bound. Binds 127.0.0.1 unless HOST says otherwise.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.argv[2] || process.env.PORT || 3000);

const httpServer = http.createServer();
const io = new Server(httpServer, {
  serveClient: false,
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
});

io.on("connection", (socket) => {
  socket.on("subscribe", (channel, ack) => {
    if (typeof channel === "string") socket.join(channel);
    if (typeof ack === "function") ack();
  });
  socket.on("publish", (msg, ack) => {
    if (msg && typeof msg.channel === "string" && typeof msg.event === "string") {
      io.to(msg.channel).emit(msg.event, msg.data);
    }
    if (typeof ack === "function") ack();
  });
});

httpServer.listen(port, host, () => {
  const a = httpServer.address();
  console.log(`listening on ${a.address}:${a.port}`);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}
