//! Opening files in directories a container can write to. The node manager (often root) reads
//! containers' logs and exit codes and creates their log files; a symbolic link planted there
//! must not make it read or write some other file, and a FIFO must not hang it. So the last
//! component of the path is never followed (`O_NOFOLLOW`), the open never blocks
//! (`O_NONBLOCK`, cleared again once the file is known to be regular), and only a regular file
//! is taken. The directories above must be ones the container cannot replace.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// Opens `path` for reading: a regular file, not through a link.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    open(path, options)
}

/// Opens (creating it with `mode` if missing) `path` for appending: a regular file, not
/// through a link. For log files the container writes to.
pub fn create_append(path: &Path, mode: u32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true).mode(mode);
    open(path, options)
}

fn open(path: &Path, mut options: OpenOptions) -> io::Result<File> {
    options.custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits());
    let file = options.open(path).map_err(|e| {
        if e.raw_os_error() == Some(nix::libc::ELOOP) {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symbolic link, which is never followed here",
            )
        } else {
            e
        }
    })?;
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    // Blocking again, as whoever inherits the descriptor (a container's stdout) expects.
    let flags = fcntl(file.as_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
    fcntl(file.as_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn links_fifos_and_directories_are_refused_and_regular_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "do not read").unwrap();
        let link = dir.path().join("stdout");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let err = open_regular(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = create_append(&link, 0o644).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "do not read");

        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Neither open may hang on a FIFO nobody writes or reads.
        assert!(open_regular(&fifo).is_err());
        assert!(create_append(&fifo, 0o644).is_err());
        assert!(open_regular(dir.path()).is_err());

        let log = dir.path().join("log");
        create_append(&log, 0o600)
            .unwrap()
            .write_all(b"one\n")
            .unwrap();
        create_append(&log, 0o600)
            .unwrap()
            .write_all(b"two\n")
            .unwrap();
        let mut text = String::new();
        open_regular(&log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "one\ntwo\n");
        let flags = fcntl(open_regular(&log).unwrap().as_fd(), FcntlArg::F_GETFL).unwrap();
        assert!(!OFlag::from_bits_truncate(flags).contains(OFlag::O_NONBLOCK));
    }
}
