//! Errors that name the errno symbol, the operation and the object, as TLPI's `errExit` does.

use nix::errno::Errno;
use std::fmt;

/// Exit status for bad usage or bad input, everywhere in ipclab.
pub const EXIT_USAGE: i32 = 2;
/// Exit status for a failure at run time (a syscall failed, a peer died).
pub const EXIT_RUNTIME: i32 = 1;

/// One-line error carrying the exit status the program should end with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: i32,
    msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// `ERROR [EEXIST File exists] mkfifo /tmp/d/ping`
    pub fn sys(errno: Errno, op: &str, object: impl fmt::Display) -> Error {
        let object = object.to_string();
        let sep = if object.is_empty() { "" } else { " " };
        Error {
            code: EXIT_RUNTIME,
            msg: format!("ERROR [{:?} {}] {op}{sep}{object}", errno, errno.desc()),
        }
    }

    /// Same, from a `std::io::Error` (std APIs such as `File::open`).
    pub fn io(err: &std::io::Error, op: &str, object: impl fmt::Display) -> Error {
        let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
        if errno == Errno::UnknownErrno {
            return Error::runtime(format!("{op} {object}: {err}"));
        }
        Error::sys(errno, op, object)
    }

    /// Bad usage or bad input: exit status 2.
    pub fn usage(msg: impl Into<String>) -> Error {
        Error {
            code: EXIT_USAGE,
            msg: format!("ERROR {}", msg.into()),
        }
    }

    /// Run-time failure that is not a single syscall: exit status 1.
    pub fn runtime(msg: impl Into<String>) -> Error {
        Error {
            code: EXIT_RUNTIME,
            msg: format!("ERROR {}", msg.into()),
        }
    }

    /// Reclassify as bad input (e.g. EEXIST on a path the user gave).
    pub fn into_usage(mut self) -> Error {
        self.code = EXIT_USAGE;
        self
    }

    /// The same error with what the reader can do about it appended (": use a port above 1024").
    pub fn with_hint(mut self, hint: &str) -> Error {
        self.msg.push_str(hint);
        self
    }

    pub fn with_code(mut self, code: i32) -> Error {
        self.code = code;
        self
    }

    pub fn code(&self) -> i32 {
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// Ends a program with its error: one line on stderr, then the error's exit status.
pub fn exit_with(err: &Error) -> ! {
    eprintln!("{err}");
    std::process::exit(err.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message format students grep for: symbol, description, operation, object.
    #[test]
    fn sys_error_names_symbol_operation_and_object() {
        let e = Error::sys(Errno::EEXIST, "mkfifo", "DIR/ping");
        assert_eq!(e.to_string(), "ERROR [EEXIST File exists] mkfifo DIR/ping");
        assert_eq!(e.code(), EXIT_RUNTIME);
        assert_eq!(e.into_usage().code(), EXIT_USAGE);
    }
}
