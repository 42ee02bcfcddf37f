//! A PostgreSQL of this run alone: `initdb` into a fresh directory, `pg_ctl` on a free loopback
//! port, stopped (immediately, as a crash would) and started again on the same port and data,
//! and removed on drop. The machine's shared server on 5432 is never touched.
//!
//! PostgreSQL refuses to run as root: as root, every command runs as the `postgres` user
//! (`runuser -u postgres --`) on a directory that user created, so it owns it.

use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Debian's PostgreSQL 15 binaries, unless `WAAS_PG_BIN` names another directory.
fn bin_dir() -> PathBuf {
    std::env::var_os("WAAS_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

fn is_root() -> bool {
    // `id -u` rather than libc: the crate forbids unsafe code and has no libc binding.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub struct Postgres {
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
}

impl Postgres {
    /// Creates the cluster (trust authentication, user `postgres`) and starts it.
    pub fn start() -> Result<Postgres> {
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("waas-fault-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut pg = Postgres {
            dir,
            port,
            as_postgres,
            running: false,
        };
        // Created by the user that runs the server, so it owns it (`initdb` insists).
        pg.run("mkdir", &["-p".as_ref(), pg.dir.as_os_str()])?;
        let data = pg.data();
        pg.run(
            &bin_dir().join("initdb").to_string_lossy(),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--no-sync".as_ref(),
            ],
        )
        .context("initdb")?;
        pg.restart()?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`, the same across restarts.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn restart(&mut self) -> Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log");
        let data = self.data();
        self.run(
            &bin_dir().join("pg_ctl").to_string_lossy(),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        )
        .with_context(|| {
            format!(
                "pg_ctl start; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })?;
        self.running = true;
        Ok(())
    }

    /// Stops the server at once (`-m immediate`: no checkpoint, clients cut off as in a
    /// crash; committed transactions survive in the WAL).
    pub fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        let data = self.data();
        self.run(
            &bin_dir().join("pg_ctl").to_string_lossy(),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )?;
        self.running = false;
        Ok(())
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        };
        // From a directory the postgres user can read, whatever ours is.
        let out = command
            .args(args)
            .current_dir(Path::new("/"))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
