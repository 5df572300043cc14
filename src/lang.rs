//! The language of what students read: English, or French (`--lang fr`, or LANG=fr_*).

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    /// As `--lang` spells it.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    /// The one asked for, else French when LANG (or LC_ALL, LC_MESSAGES, which override it)
    /// starts with fr, else English.
    pub fn choose(asked: Option<Lang>) -> Lang {
        asked.unwrap_or_else(|| {
            let env = ["LC_ALL", "LC_MESSAGES", "LANG"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
                .unwrap_or_default();
            if env.starts_with("fr") {
                Lang::Fr
            } else {
                Lang::En
            }
        })
    }
}

/// The process's language: set once by the command line, read where a message is written (the
/// grader's checks run deep below any place that could carry it as an argument).
static FR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set(lang: Lang) {
    FR.store(lang == Lang::Fr, std::sync::atomic::Ordering::Relaxed);
}

pub fn current() -> Lang {
    if fr() {
        Lang::Fr
    } else {
        Lang::En
    }
}

pub fn fr() -> bool {
    FR.load(std::sync::atomic::Ordering::Relaxed)
}

/// `tf!("english {x}", "français {x}")`: the message in the process's language, as a String.
/// Both texts take the same arguments, so both languages say the same.
#[macro_export]
macro_rules! tf {
    ($en:literal, $fr:literal $(,)?) => {
        if $crate::lang::fr() {
            format!($fr)
        } else {
            format!($en)
        }
    };
    ($en:literal, $fr:literal, $($arg:tt)+) => {
        if $crate::lang::fr() {
            format!($fr, $($arg)+)
        } else {
            format!($en, $($arg)+)
        }
    };
}

/// What joins the parts of a message: French puts a space before a semicolon.
pub fn sep() -> &'static str {
    if fr() {
        " ; "
    } else {
        "; "
    }
}

pub fn and() -> &'static str {
    if fr() {
        " et "
    } else {
        " and "
    }
}
