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
                eprintln!("ERROR {}", one_line(&e.to_string()));
                std::process::exit(EXIT_USAGE)
            }
        },
    }
}

/// clap's several-line message as one line: what is wrong, what it lists (the missing
/// arguments, the possible values), then the usage; without the "try --help" footer.
fn one_line(text: &str) -> String {
    let mut what = Vec::new();
    let mut usage = None;
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = l.strip_prefix("Usage: ") {
            usage = Some(u);
        } else if !l.starts_with("For more information") {
            what.push(l.trim_start_matches("error: "));
        }
    }
    let mut line = what.join(" ");
    if line.is_empty() {
        line = "bad usage".into();
    }
    if let Some(u) = usage {
        line.push_str(&format!(" (usage: {u})"));
    }
    line
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

#[cfg(test)]
mod tests {
    use super::one_line;

    /// A missing argument and an invalid value keep what clap lists, on one line.
    #[test]
    fn clap_errors_fit_one_line() {
        let missing = "error: the following required arguments were not provided:\n  <N>\n\nUsage: ipclab lab <N>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(missing),
            "the following required arguments were not provided: <N> (usage: ipclab lab <N>)"
        );
        let invalid = "error: invalid value 'java' for '--lang <LANG>'\n  [possible values: python, c, rust]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(invalid),
            "invalid value 'java' for '--lang <LANG>' [possible values: python, c, rust]"
        );
    }
}
