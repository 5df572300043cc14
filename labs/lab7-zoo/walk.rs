//! Lab 7 walkthrough: the IPC zoo measured on this machine, then the same pair of mechanisms on
//! one CPU and across two.

use crate::error::Result;
use crate::tr;
use crate::walkthrough::Walk;

pub fn walk(w: &mut Walk) -> Result<()> {
    let ipclab = w.bin("ipclab");
    let svg_path = w.chart_path("lab7.svg")?;
    let svg = svg_path.to_str().unwrap_or("target/lab7.svg");
    w.step(tr!(
        w,
        "Every mechanism, 1-byte and 4 KiB messages",
        "Chaque mécanisme, messages de 1 octet et de 4 Kio"
    ));
    w.say(tr!(
        w,
        "Each row is main and a peer it forked and exec'd exchanging messages: the round trip
         (min, median, p99, max), a one-way stream, and the CPU each side burns per round trip.
         Signals and eventfd carry at most 8 (7) bytes: their 4 KiB rows are skipped, with the
         reason.",
        "Chaque ligne, c'est main et un pair qu'il a lancé par fork et exec, qui échangent des
         messages : l'aller-retour (min, médiane, p99, max), un flot à sens unique, et le CPU que
         chaque côté brûle par aller-retour. Les signaux et eventfd portent au plus 8 (7) octets :
         leurs lignes de 4 Kio sont sautées, avec la raison."
    ));
    let (code, out) = w.shell(&[
        &ipclab,
        "bench",
        "--size",
        "1",
        "--size",
        "4096",
        "--round-trips",
        "2000",
        "--svg",
        svg,
    ])?;
    w.expect(code == 0, tr!(w, "the bench ran", "la mesure a tourné"));
    w.expect(
        out.contains("computed from this run:") && out.contains("fastest first"),
        tr!(
            w,
            "the bench computed its ranking and ratios from this very run",
            "la mesure a calculé son classement et ses rapports sur cette exécution même"
        ),
    );
    for m in crate::zoo::mech::ALL {
        w.expect(
            out.lines().any(|l| l.starts_with(m.name())),
            &tr!(
                w,
                format!("{} measured", m.name()),
                format!("{} mesuré", m.name())
            ),
        );
    }
    w.expect(
        std::path::Path::new(svg).exists(),
        &tr!(
            w,
            format!("the bar chart is in {svg}"),
            format!("le diagramme en barres est dans {svg}")
        ),
    );
    let med = |name: &str| -> Option<f64> {
        out.lines()
            .find(|l| l.starts_with(name) && l.contains("     1 B"))
            .and_then(|l| l.split_whitespace().nth(5))
            .and_then(|v| v.parse().ok())
    };
    if let (Some(pipe), Some(spin)) = (med("pipe "), med("shm-spin")) {
        w.say(&tr!(w, format!(
            "Here: a pipe round trip takes {pipe} µs (two syscalls, two copies, a sleeping reader
             woken each way); spinning on shared memory takes {spin} µs and no syscall, but the
             cpu/rt column shows a core burnt while it waits."
        ), format!("Ici : un aller-retour par tube prend {pipe} µs (deux appels système, deux copies, un
             lecteur endormi réveillé dans chaque sens) ; l'attente active sur de la mémoire partagée
             prend {spin} µs et aucun appel système, mais la colonne cpu/rt montre un cœur brûlé
             pendant qu'il attend."
        )));
    }

    w.step(tr!(w, "Same CPU or two CPUs", "Même CPU ou deux CPU"));
    w.say(tr!(
        w,
        "Pinned to one CPU, a blocking round trip is two context switches on that CPU; pinned
         apart, each message must wake the other CPU, an inter-processor interrupt that virtual
         machines make dear. shm-spin refuses --pin same: the spinner would keep the only CPU
         until its timeslice ends.",
        "Placé sur un seul CPU, un aller-retour bloquant fait deux changements de contexte sur ce
         CPU ; placés sur deux, chaque message doit réveiller l'autre CPU, une interruption inter-
         processeurs que les machines virtuelles rendent coûteuse. shm-spin refuse --pin same : le
         processus en attente active garderait le seul CPU jusqu'à la fin de sa tranche de temps."
    ));
    let mut pipe_at = Vec::new();
    for pin in ["same", "split"] {
        let (code, out) = w.shell(&[
            &ipclab,
            "bench",
            "--mechanism",
            "pipe",
            "--mechanism",
            "shm-futex",
            "--size",
            "64",
            "--round-trips",
            "2000",
            "--pin",
            pin,
            "--no-process-costs",
        ])?;
        w.expect(
            code == 0,
            &tr!(
                w,
                format!("--pin {pin} ran"),
                format!("--pin {pin} a tourné")
            ),
        );
        let median = out
            .lines()
            .find(|l| l.starts_with("pipe "))
            .and_then(|l| l.split_whitespace().nth(5).map(str::to_string));
        pipe_at.push(median.unwrap_or("?".into()));
    }
    w.say(&tr!(
        w,
        format!(
            "Here a 64-byte pipe round trip took {} µs on one CPU and {} µs across two.",
            pipe_at[0], pipe_at[1]
        ),
        format!(
            "Ici un aller-retour de 64 octets par tube a pris {} µs sur un CPU et {} µs sur deux.",
            pipe_at[0], pipe_at[1]
        )
    ));
    let (code, out) = w.shell(&[
        &ipclab,
        "bench",
        "--mechanism",
        "shm-spin",
        "--pin",
        "same",
        "--size",
        "64",
    ])?;
    w.expect(
        code == 2 && out.contains("refuses --pin same"),
        tr!(
            w,
            "shm-spin refuses --pin same, in one line, exit 2",
            "shm-spin refuse --pin same, en une ligne, code 2"
        ),
    );
    Ok(())
}
