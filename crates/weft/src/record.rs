//! Recordings: the kernel's ring-buffer records written to a file as they
//! arrive (`--record`), and read back through the same user-space stages
//! without the kernel (`--replay`). A recording is what a fixture, a bug
//! report or the pipeline benchmark is made of.
//!
//! Format (little-endian):
//!
//! ```text
//! magic        8 bytes  "WEFTREC1"
//! abi          u32      WEFT_ABI_VERSION of the records that follow
//! header_len   u32      bytes of header fields that follow
//!   clock_offset_ns  i64   add to the kernel's monotonic time for wall time
//!   ephemeral_lo     u16   the recording host's ephemeral port range
//!   ephemeral_hi     u16
//!   boot_id_len      u8    then the boot id (entity ids stay those of the host)
//! records      { len: u32, bytes: [u8; len] }*
//! ```
//!
//! Unknown trailing header fields are skipped, so later versions can add
//! some. A last record cut short (weft killed while writing) ends the replay
//! and is reported, the records before it are replayed.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"WEFTREC1";
/// A record longer than this is not from weft's kernel side (the largest is
/// one 16 KiB payload chunk plus its header): the file is damaged.
pub const MAX_RECORD: u32 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot create the recording {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot open the recording {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is not a weft recording (made with --record)")]
    NotARecording { path: PathBuf },
    #[error(
        "{path} holds records of kernel ABI version {found}; this weft reads version {expected}"
    )]
    Abi {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("cannot read the recording {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: a record claims {len} bytes (at most {MAX_RECORD}): the file is damaged")]
    Damaged { path: PathBuf, len: u32 },
}

/// What a recording says about the host it was made on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub abi: u32,
    pub clock_offset_ns: i64,
    pub ephemeral: (u16, u16),
    pub boot_id: String,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let boot = self.boot_id.as_bytes();
        let boot = &boot[..boot.len().min(255)];
        let mut body = Vec::with_capacity(13 + boot.len());
        body.extend_from_slice(&self.clock_offset_ns.to_le_bytes());
        body.extend_from_slice(&self.ephemeral.0.to_le_bytes());
        body.extend_from_slice(&self.ephemeral.1.to_le_bytes());
        body.push(boot.len() as u8);
        body.extend_from_slice(boot);
        let mut out = Vec::with_capacity(16 + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.abi.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// Writes records to a file created private (0600), never through a
/// symbolic link. Write errors stop the recording and are kept for the
/// summary; capture goes on.
pub struct Recorder {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    pub records: u64,
    pub bytes: u64,
    pub error: Option<io::Error>,
}

impl Recorder {
    pub fn create(path: &Path, header: &Header) -> Result<Self, RecordError> {
        let err = |source| RecordError::Create {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(err)?;
        // An existing file keeps its mode through O_CREAT: make it private.
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(err)?;
        }
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header.encode()).map_err(err)?;
        Ok(Recorder {
            path: path.to_owned(),
            out: Some(out),
            records: 0,
            bytes: 0,
            error: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, rec: &[u8]) {
        let Some(out) = &mut self.out else { return };
        let len = u32::try_from(rec.len()).unwrap_or(u32::MAX);
        let res = out
            .write_all(&len.to_le_bytes())
            .and_then(|()| out.write_all(rec));
        match res {
            Ok(()) => {
                self.records += 1;
                self.bytes += rec.len() as u64;
            }
            Err(e) => {
                self.out = None;
                self.error = Some(e);
            }
        }
    }

    /// Flush and close; the first write error, if any.
    pub fn finish(&mut self) -> Option<&io::Error> {
        if let Some(mut out) = self.out.take()
            && let Err(e) = out.flush().and_then(|()| out.get_ref().sync_data())
        {
            self.error = Some(e);
        }
        self.error.as_ref()
    }
}

/// Reads a recording back.
pub struct Replay {
    path: PathBuf,
    input: BufReader<File>,
    pub header: Header,
    buf: Vec<u8>,
    /// Bytes of the record returned last, still in `input`'s buffer.
    consumed: usize,
    /// The file ended inside a record.
    pub cut_short: bool,
}

impl Replay {
    pub fn open(path: &Path, expected_abi: u32) -> Result<Self, RecordError> {
        let file = File::open(path).map_err(|source| RecordError::Open {
            path: path.to_owned(),
            source,
        })?;
        let mut input = BufReader::with_capacity(1 << 20, file);
        let not_rec = || RecordError::NotARecording {
            path: path.to_owned(),
        };
        let mut fixed = [0u8; 16];
        input.read_exact(&mut fixed).map_err(|_| not_rec())?;
        if &fixed[..8] != MAGIC {
            return Err(not_rec());
        }
        let abi = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
        let hlen = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]);
        if abi != expected_abi {
            return Err(RecordError::Abi {
                path: path.to_owned(),
                found: abi,
                expected: expected_abi,
            });
        }
        if !(13..=4096).contains(&hlen) {
            return Err(not_rec());
        }
        let mut body = vec![0u8; hlen as usize];
        input.read_exact(&mut body).map_err(|_| not_rec())?;
        let i64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[o..o + 8]);
            i64::from_le_bytes(b)
        };
        let u16_at = |o: usize| u16::from_le_bytes([body[o], body[o + 1]]);
        let boot_len = usize::from(body[12]);
        let boot_id = body
            .get(13..13 + boot_len)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(not_rec)?;
        let header = Header {
            abi,
            clock_offset_ns: i64_at(0),
            ephemeral: (u16_at(8), u16_at(10)),
            boot_id,
        };
        Ok(Replay {
            path: path.to_owned(),
            input,
            header,
            buf: Vec::with_capacity(1 << 15),
            consumed: 0,
            cut_short: false,
        })
    }

    /// The next record, `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>, RecordError> {
        // Most records lie whole in the input's buffer: returned from
        // there, without a copy.
        self.input.consume(std::mem::take(&mut self.consumed));
        let avail = self.input.fill_buf().map_err(|source| RecordError::Read {
            path: self.path.clone(),
            source,
        })?;
        if let Some(head) = avail.first_chunk::<4>() {
            let len = u32::from_le_bytes(*head);
            if len <= MAX_RECORD && avail.len() >= 4 + len as usize {
                let end = 4 + len as usize;
                self.consumed = end;
                return Ok(Some(&self.input.buffer()[4..end]));
            }
        }
        // A record across the buffer's end (or a damaged length): read in
        // pieces.
        let mut len = [0u8; 4];
        match read_full(&mut self.input, &mut len) {
            Ok(0) => return Ok(None),
            Ok(4) => {}
            Ok(_) => {
                self.cut_short = true;
                return Ok(None);
            }
            Err(source) => {
                return Err(RecordError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        let len = u32::from_le_bytes(len);
        if len > MAX_RECORD {
            return Err(RecordError::Damaged {
                path: self.path.clone(),
                len,
            });
        }
        // The buffer only grows (zero-filling it per record would cost as
        // much as the copy).
        let len = len as usize;
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let buf = &mut self.buf[..len];
        match read_full(&mut self.input, buf) {
            Ok(n) if n == len => Ok(Some(&self.buf[..len])),
            Ok(_) => {
                self.cut_short = true;
                Ok(None)
            }
            Err(source) => Err(RecordError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// Read until `buf` is full or the input ends; how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn header() -> Header {
        Header {
            abi: 1,
            clock_offset_ns: -1_234_567_890_123,
            ephemeral: (32768, 60999),
            boot_id: "0f0e0d0c-0b0a-4909-8807-060504030201".into(),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-record-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn round_trip_and_private_file() {
        let dir = tmp("rt");
        let path = dir.join("r.weftrec");
        // A pre-existing world-readable file becomes private.
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut rec = Recorder::create(&path, &header()).unwrap();
        let records: Vec<Vec<u8>> = vec![vec![], vec![1, 2, 3], vec![7; 20_000]];
        for r in &records {
            rec.write(r);
        }
        assert!(rec.finish().is_none());
        assert_eq!(rec.records, 3);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let mut rp = Replay::open(&path, 1).unwrap();
        assert_eq!(rp.header, header());
        let mut got = Vec::new();
        while let Some(r) = rp.next_record().unwrap() {
            got.push(r.to_vec());
        }
        assert_eq!(got, records);
        assert!(!rp.cut_short);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_symlinks_and_foreign_files() {
        let dir = tmp("bad");
        let target = dir.join("victim");
        std::fs::write(&target, b"keep me").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            Recorder::create(&link, &header()),
            Err(RecordError::Create { .. })
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");

        assert!(matches!(
            Replay::open(&target, 1),
            Err(RecordError::NotARecording { .. })
        ));
        let path = dir.join("r");
        let mut rec = Recorder::create(&path, &header()).unwrap();
        rec.finish();
        assert!(matches!(
            Replay::open(&path, 2),
            Err(RecordError::Abi {
                found: 1,
                expected: 2,
                ..
            })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cut_short_and_damaged() {
        let dir = tmp("cut");
        let path = dir.join("r");
        let mut rec = Recorder::create(&path, &header()).unwrap();
        rec.write(&[9; 100]);
        rec.write(&[8; 100]);
        rec.finish();
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 10]).unwrap();
        let mut rp = Replay::open(&path, 1).unwrap();
        assert_eq!(rp.next_record().unwrap().unwrap(), &[9; 100]);
        assert!(rp.next_record().unwrap().is_none());
        assert!(rp.cut_short);

        let mut bad = full[..full.len() - 104].to_vec();
        bad.extend_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        let mut rp = Replay::open(&path, 1).unwrap();
        assert_eq!(rp.next_record().unwrap().unwrap(), &[9; 100]);
        assert!(matches!(rp.next_record(), Err(RecordError::Damaged { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
