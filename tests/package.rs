//! `ipclab package`: the Gradescope zip's scripts run here in a simulated /autograder and write a
//! valid results.json (full marks for a correct C submission, zero with the reason for one that
//! does not compile); the Classroom workflow is valid YAML with a command-grader step per check
//! worth its points, and its grade.sh + check.py grade a repository. (The scripts are tested
//! with this build's binaries; `make static` builds the self-contained ones, see src/package.rs.)

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn unzip(zip: &Path, to: &Path) {
    let mut z = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let p = to.join(f.name().unwrap().to_string());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut out = std::fs::File::create(&p).unwrap();
        std::io::copy(&mut f, &mut out).unwrap();
        if let Some(mode) = f.unix_mode() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

#[test]
fn package_gradescope_runs_in_a_simulated_autograder() {
    let _forks = common::fork_guard();
    let bins = world_readable_bins(&["ipclab"]);
    let root = world_dir("ipclab-autograder-");
    let zip = root.path().join("ag.zip");
    let out = run(Command::new(bin("ipclab")).args([
        "package",
        "gradescope",
        "2",
        "--runs",
        "1",
        "--allow-dynamic",
        "--bin-dir",
        bins.path().to_str().unwrap(),
        "--output",
        zip.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let source = root.path().join("source");
    unzip(&zip, &source);
    for f in ["setup.sh", "run_autograder", "bin/ipclab"] {
        let m = std::fs::metadata(source.join(f)).unwrap();
        assert!(m.permissions().mode() & 0o111 != 0, "{f} not executable");
    }
    // Everything the image needs is here already: setup.sh installs nothing and succeeds.
    let out = run(Command::new("sh").arg(source.join("setup.sh")));
    assert!(out.status.success(), "setup.sh: {}", text(&out.stderr));

    let fixtures = common::lab_dir(2).join("fixtures");
    for (file, content, want_score) in [
        (
            "main.c",
            std::fs::read_to_string(fixtures.join("pingpong.c")).unwrap(),
            Some(11),
        ),
        ("main.c", "int main(void) { return 0 }\n".to_string(), None),
    ] {
        let sub = root.path().join("submission");
        let _ = std::fs::remove_dir_all(&sub);
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(file), content).unwrap();
        let _ = std::fs::remove_dir_all(root.path().join("results"));
        let out =
            run(Command::new(source.join("run_autograder")).env("AUTOGRADER_ROOT", root.path()));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let results: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.path().join("results/results.json")).unwrap(),
        )
        .unwrap();
        match want_score {
            Some(s) => {
                assert_eq!(results["score"], s, "{results}");
                assert_eq!(results["max_score"], s);
                assert!(results["tests"].as_array().unwrap().len() >= 8);
            }
            None => {
                assert_eq!(results["score"], 0, "{results}");
                assert!(results["output"]
                    .as_str()
                    .unwrap()
                    .contains("compile error"));
            }
        }
    }
    Clean::new("ipclabg").check();
}

#[test]
fn package_refuses_a_dynamic_binary() {
    let _forks = common::fork_guard();
    let out = run(Command::new(bin("ipclab")).args([
        "package",
        "gradescope",
        "2",
        "--output",
        "/tmp/ipclab-never.zip",
    ]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("dynamically linked") && err.contains("make static"),
        "{err}"
    );
    assert!(!Path::new("/tmp/ipclab-never.zip").exists());
}

#[test]
fn package_classroom_workflow_is_valid_and_grades() {
    let _forks = common::fork_guard();
    let bins = world_readable_bins(&["ipclab"]);
    let repo = world_dir("ipclab-classroom-");
    let out = run(Command::new(bin("ipclab")).args([
        "package",
        "classroom",
        "2",
        "--runs",
        "1",
        "--allow-dynamic",
        "--bin-dir",
        bins.path().to_str().unwrap(),
        "--output",
        repo.path().to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yml = std::fs::read_to_string(repo.path().join(".github/workflows/classroom.yml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&yml).unwrap_or_else(|e| panic!("{e}\n{yml}"));
    let steps = docs[0]["jobs"]["grade"]["steps"].as_vec().unwrap();
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(uses.contains(&"actions/checkout@v4"));
    assert!(uses.contains(&"classroom-resources/autograding-grading-reporter@v1"));
    let graders: Vec<&yaml_rust2::Yaml> = steps
        .iter()
        .filter(|s| s["uses"].as_str() == Some("classroom-resources/autograding-command-grader@v1"))
        .collect();
    let contract = ipclab::spec::find(2).unwrap().contract.unwrap();
    assert_eq!(graders.len(), contract.points.len());
    let total: i64 = graders
        .iter()
        .map(|g| g["with"]["max-score"].as_i64().unwrap())
        .sum();
    assert_eq!(total, contract.points.values().sum::<u32>() as i64);
    let reporter = steps
        .iter()
        .find(|s| s["uses"].as_str() == Some("classroom-resources/autograding-grading-reporter@v1"))
        .unwrap();
    let runners: Vec<&str> = reporter["with"]["runners"]
        .as_str()
        .unwrap()
        .split(',')
        .collect();
    for g in &graders {
        let id = g["id"].as_str().unwrap();
        assert!(runners.contains(&id), "{id} not reported");
        assert!(
            reporter["env"][format!("{}_RESULTS", id.to_uppercase()).as_str()]
                .as_str()
                .is_some()
        );
    }

    // The repository holds a correct submission: grade.sh grades it, check.py reads each check.
    let fixtures = common::lab_dir(2).join("fixtures");
    std::fs::copy(fixtures.join("pingpong.c"), repo.path().join("main.c")).unwrap();
    let out = run(Command::new("sh")
        .arg(".github/ipclab/grade.sh")
        .current_dir(repo.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(repo.path().join("ipclab-junit.xml").exists());
    for check in contract.points.keys() {
        let out = run(Command::new("python3")
            .args([".github/ipclab/check.py", "ipclab-report.json", check])
            .current_dir(repo.path()));
        assert!(out.status.success(), "{check}: {}", text(&out.stdout));
    }
    let out = run(Command::new("python3")
        .args([
            ".github/ipclab/check.py",
            "ipclab-report.json",
            "no-such-check",
        ])
        .current_dir(repo.path()));
    assert!(!out.status.success());
    Clean::new("ipclabg").check();
}
