//! Command-line parsing shared by every binary: clap, but bad usage is one line and exit 2.

use crate::error::EXIT_USAGE;
use clap::error::ErrorKind;

/// Parses argv; on bad usage prints `ERROR <what clap found>` and exits 2. Help goes to stdout, 0.
pub fn parse<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(t) => t,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
            _ => {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("bad usage");
                eprintln!("ERROR {}", first.trim_start_matches("error: "));
                std::process::exit(EXIT_USAGE)
            }
        },
    }
}

/// A binary's whole `main`: parses the arguments, runs `body`, exits with the status it returns
/// (or, on error, prints the one-line error and exits with its status).
pub fn main<T: clap::Parser>(body: impl FnOnce(&T) -> crate::error::Result<i32>) -> ! {
    let args: T = parse();
    match body(&args) {
        Ok(code) => std::process::exit(code),
        Err(e) => crate::error::exit_with(&e),
    }
}
