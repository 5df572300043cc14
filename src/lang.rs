//! The language of what students read: English, or French (`--lang fr`, or LANG=fr_*).

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
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
