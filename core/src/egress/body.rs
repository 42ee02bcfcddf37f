//! Reading a response body without trusting its size. An endpoint may answer with a body of
//! any length, or one that never ends; reading it whole let one endpoint fill the process's
//! memory. These helpers read at most a bounded prefix. The caller then drops the response:
//! when the body was not read to its end, the connection is closed rather than drained (and
//! not reused), so the rest of the body is never transferred beyond the socket buffers.

/// A body read up to a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded {
    /// The first bytes of the body, at most the bound.
    pub bytes: Vec<u8>,
    /// The body went on past the bound (what follows was not read).
    pub truncated: bool,
}

/// Reads `response`'s body until it ends or passes `max` bytes; keeps at most `max`.
pub async fn read_at_most(
    response: &mut reqwest::Response,
    max: usize,
) -> Result<Bounded, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Bounded {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bounded {
        bytes,
        truncated: false,
    })
}
