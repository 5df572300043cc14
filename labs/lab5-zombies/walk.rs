//! Lab 5 walkthrough: zombies, one SIGCHLD for many deaths, orphans and who adopts them.

use crate::error::Result;
use crate::tr;
use crate::walkthrough::{pid_of_role, Walk};
use crate::{inspect, process};
use rand::RngExt;
use std::time::{Duration, Instant};

pub fn walk(w: &mut Walk) -> Result<()> {
    w.step(tr!(
        w,
        "A zombie: exited, not yet waited for",
        "Un zombie : terminé, pas encore attendu"
    ));
    w.say(tr!(
        w,
        "The child exits at once. Until its parent calls wait, the kernel keeps its pid and exit
         status: ps shows it as Z <defunct>. It is already dead, so SIGKILL changes nothing; only
         the parent's wait removes it.",
        "L'enfant se termine aussitôt. Tant que son père n'appelle pas wait, le noyau garde son pid
         et son code de sortie : ps le montre comme Z <defunct>. Il est déjà mort, donc SIGKILL n'y
         change rien ; seul le wait du père le fait disparaître."
    ));
    let zombie = w.bin("zombie");
    // --hold: the zombie waits for its reaping until stdin says so, so --step can pause on it.
    let mut live = w.spawn(&[&zombie, "--hold"])?;
    let line = live.wait_for("then press Enter to reap")?;
    let child = crate::walkthrough::number_after(&line, "-p ").unwrap_or(0);
    w.pause(&tr!(w, format!(
        "child {child} is a zombie now: `ps -o pid,ppid,stat,comm -p {child}` in another terminal shows Z"
    ), format!("l'enfant {child} est maintenant un zombie : `ps -o pid,ppid,stat,comm -p {child}` dans un autre terminal montre Z"
    )));
    let (code, out) = live.finish()?;
    w.expect(
        code == 0,
        tr!(w, "zombie exited 0", "zombie s'est terminé avec 0"),
    );
    w.expect(
        out.contains("not yet waited for") && out.contains(" Z "),
        tr!(
            w,
            "the child showed state Z before the wait",
            "l'enfant était dans l'état Z avant le wait"
        ),
    );
    w.expect(
        out.contains("(a zombie is already dead):") && out.matches(" Z ").count() >= 2,
        tr!(w, "still Z after SIGKILL", "toujours Z après SIGKILL"),
    );
    w.expect(
        out.contains("(gone)"),
        tr!(
            w,
            "gone from /proc after waitpid",
            "disparu de /proc après waitpid"
        ),
    );

    let m: u32 = rand::rng().random_range(3..=8);
    w.step(&tr!(
        w,
        format!("{m} deaths, one SIGCHLD: reap in a loop"),
        format!("{m} morts, un seul SIGCHLD : récupérer en boucle")
    ));
    w.say(tr!(
        w,
        "SIGCHLD is blocked while the children die, so it stays pending: a pending standard signal
         is one bit, not a counter. Unblocking delivers it once. A handler that reaps one child per
         signal would leave zombies; waitpid(-1, WNOHANG) in a loop reaps every child that has
         exited, however many signals arrived.",
        "SIGCHLD est bloqué pendant que les enfants meurent, il reste donc en attente : un signal
         standard en attente est un bit, pas un compteur. Le débloquer le délivre une fois. Un
         gestionnaire qui récupère un enfant par signal laisserait des zombies ; waitpid(-1,
         WNOHANG) en boucle récupère chaque enfant terminé, quel que soit le nombre de signaux
         arrivés."
    ));
    let (code, out) = w.shell(&[&w.bin("reaper"), "--children", &m.to_string()])?;
    w.expect(
        code == 0,
        tr!(
            w,
            "reaper exited 0 (it checks 1 delivery and M reaped itself)",
            "reaper s'est terminé avec 0 (il vérifie lui-même 1 délivrance et M enfants récupérés)"
        ),
    );
    w.expect(
        out.contains(&format!("delivered 1 time(s) for {m} deaths")),
        tr!(
            w,
            "one delivery for all deaths",
            "une seule délivrance pour toutes les morts"
        ),
    );
    w.expect(
        out.contains(&format!("reaped {m} children")),
        tr!(w, "all children reaped", "tous les enfants récupérés"),
    );

    let orphan = w.bin("orphan");
    w.step(tr!(
        w,
        "An orphan, adopted by the subreaper its launcher declared",
        "Un orphelin, adopté par le subreaper que son lanceur a déclaré"
    ));
    w.say(
        tr!(w, "The launcher calls prctl(PR_SET_CHILD_SUBREAPER, 1), forks a parent, which forks a child and
         exits. The child is re-parented to the nearest subreaper, the launcher, which reaps it.", "Le lanceur appelle prctl(PR_SET_CHILD_SUBREAPER, 1), crée un père, qui crée un enfant et
         se termine. L'enfant est rattaché au subreaper le plus proche, le lanceur, qui le
         récupère."),
    );
    let (code, out) = w.shell(&[&orphan, "--subreaper"])?;
    let launcher = pid_of_role(&out, "launcher").unwrap_or(0);
    w.expect(
        code == 0,
        tr!(w, "orphan exited 0", "orphan s'est terminé avec 0"),
    );
    w.expect(
        out.contains(&format!("my parent is now {launcher} ")),
        tr!(
            w,
            "the launcher adopted the child",
            "le lanceur a adopté l'enfant"
        ),
    );
    w.expect(
        out.contains("reaped adopted orphan"),
        tr!(w, "the launcher reaped it", "le lanceur l'a récupéré"),
    );

    w.step(tr!(
        w,
        "An orphan, adopted by the walkthrough (a subreaper further up)",
        "Un orphelin, adopté par le déroulé (un subreaper plus haut)"
    ));
    w.say(tr!(w, "Without --subreaper the nearest subreaper is this walkthrough, which declared itself one at start.", "Sans --subreaper, le subreaper le plus proche est ce déroulé, qui s'est déclaré tel au départ."));
    let me = std::process::id() as i32;
    let (_, out) = w.shell(&[&orphan])?;
    w.expect(
        out.contains(&format!("my parent is now {me} ")),
        tr!(
            w,
            "the walkthrough adopted the child",
            "le déroulé a adopté l'enfant"
        ),
    );
    w.settle();

    w.step(tr!(
        w,
        "An orphan with no subreaper above it: PID 1 adopts it",
        "Un orphelin sans subreaper au-dessus : le PID 1 l'adopte"
    ));
    w.say(tr!(
        w,
        "The walkthrough clears its own subreaper flag for this step. The child now goes to PID 1
         (or to a subreaper above the walkthrough, if your session has one, e.g. a terminal
         multiplexer or systemd --user). Until its new parent reaps it, the exited orphan is a
         zombie; a classic init reaps at once, the PID 1 of some containers only now and then.",
        "Le déroulé retire son propre drapeau de subreaper pour cette étape. L'enfant va donc au
         PID 1 (ou à un subreaper au-dessus du déroulé, si votre session en a un, par exemple un
         multiplexeur de terminal ou systemd --user). Tant que son nouveau père ne l'a pas
         récupéré, l'orphelin terminé est un zombie ; un init classique récupère aussitôt, le PID 1
         de certains conteneurs seulement de temps en temps."
    ));
    process::clear_child_subreaper()?;
    let run = w.shell(&[&orphan]);
    process::set_child_subreaper()?;
    let (_, out) = run?;
    let child = pid_of_role(&out, "child").unwrap_or(0);
    let adopted_by = crate::walkthrough::number_after(&out, "my parent is now ").unwrap_or(0);
    w.expect(
        adopted_by != me && adopted_by != 0,
        &tr!(
            w,
            format!("adopted by {adopted_by}, not by the walkthrough"),
            format!("adopté par {adopted_by}, pas par le déroulé")
        ),
    );
    // Observation, not synchronisation: nothing tells us when another process reaps.
    let t0 = Instant::now();
    let mut seen_zombie = false;
    while t0.elapsed() < Duration::from_secs(10) {
        match inspect::info(child) {
            Some(p) if p.is_zombie() => seen_zombie = true,
            Some(_) => {}
            None => break,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let gone = inspect::info(child).is_none();
    let ms = t0.elapsed().as_millis();
    w.say(&match (w.fr(), gone) {
        (false, _) => format!(
            "child {child} was {}reaped by {adopted_by} after {ms} ms{}",
            if gone { "" } else { "NOT " },
            if seen_zombie {
                ", a zombie until then"
            } else {
                ""
            }
        ),
        (true, true) => format!(
            "l'enfant {child} a été récupéré par {adopted_by} au bout de {ms} ms{}",
            if seen_zombie {
                ", zombie jusque-là"
            } else {
                ""
            }
        ),
        (true, false) => format!(
            "l'enfant {child} n'a PAS été récupéré par {adopted_by} au bout de {ms} ms{}",
            if seen_zombie { ", toujours zombie" } else { "" }
        ),
    });
    w.expect(
        gone,
        tr!(
            w,
            "its new parent reaped it within 10 s",
            "son nouveau père l'a récupéré en moins de 10 s"
        ),
    );
    Ok(())
}
