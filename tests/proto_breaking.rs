//! The contract check of the test command (scripts/proto-breaking.sh, run
//! by scripts/test.sh): real git and real buf on a scratch copy of the proto,
//! so a change that would break existing clients is refused and a compatible
//! one passes, on main and on a branch.

#[allow(dead_code)]
#[path = "common/temp.rs"]
mod temp;

use std::path::Path;
use std::process::{Command, Output};
use temp::TempDir;

const PROTO: &str = "proto/graphgateway/v1/security_configuration_task.proto";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository holding the project's buf.yaml, proto/ and the script, with
/// one commit on main.
fn repository() -> TempDir {
    let dir = TempDir::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        "buf.yaml".to_owned(),
        "scripts/proto-breaking.sh".to_owned(),
    ];
    files.extend(protos(root, Path::new("proto")));
    for file in &files {
        let to = dir.0.join(file);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(root.join(file), &to).expect("copy");
    }
    git(&dir.0, &["init", "--quiet", "--initial-branch=main"]);
    commit(&dir.0, "the contract as released");
    dir
}

/// Every `.proto` under `dir` (relative to `root`), the contract's own and
/// the vendored ones it imports.
fn protos(root: &Path, dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root.join(dir)).expect("read proto dir") {
        let path = dir.join(entry.expect("entry").file_name());
        if root.join(&path).is_dir() {
            found.extend(protos(root, &path));
        } else if path.extension().is_some_and(|e| e == "proto") {
            found.push(path.to_string_lossy().into_owned());
        }
    }
    found
}

fn commit(dir: &Path, message: &str) {
    git(dir, &["add", "--all"]);
    git(dir, &["commit", "--quiet", "--allow-empty", "-m", message]);
}

/// Rewrites the proto: `from` must occur exactly once.
fn edit(dir: &Path, from: &str, to: &str) {
    let path = dir.join(PROTO);
    let text = std::fs::read_to_string(&path).expect("read proto");
    assert_eq!(text.matches(from).count(), 1, "{from:?} once in the proto");
    std::fs::write(&path, text.replace(from, to)).expect("write proto");
}

fn check(dir: &Path) -> Output {
    Command::new("bash")
        .arg("scripts/proto-breaking.sh")
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("bash not runnable ({e})"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_refused(out: &Output, names: &str) {
    let text = text(out);
    assert!(!out.status.success(), "a breaking change passed:\n{text}");
    assert!(text.contains(names), "{names:?} not in:\n{text}");
}

fn assert_passed(out: &Output) {
    let text = text(out);
    assert!(out.status.success(), "a compatible change failed:\n{text}");
    assert!(text.contains("checking proto/ against"), "{text}");
}

/// An existing field under a new number: every client's encoding of it breaks.
const RENUMBER: (&str, &str) = (
    "optional string display_name = 2 ",
    "optional string display_name = 18 ",
);
/// A new field: old clients ignore it.
const NEW_FIELD: (&str, &str) = (
    "optional string display_name = 2 ",
    "optional string note = 18;\n  optional string display_name = 2 ",
);

#[test]
fn a_single_commit_is_skipped_with_a_message() {
    let repo = repository();
    let out = check(&repo.0);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("skipped: HEAD has no parent"),
        "{}",
        text(&out)
    );
}

#[test]
fn on_main_a_renumbered_field_fails_and_a_new_field_passes() {
    let repo = repository();
    edit(&repo.0, RENUMBER.0, RENUMBER.1);
    commit(&repo.0, "renumber display_name");
    assert_refused(&check(&repo.0), "display_name");

    git(&repo.0, &["reset", "--quiet", "--hard", "HEAD~1"]);
    edit(&repo.0, NEW_FIELD.0, NEW_FIELD.1);
    commit(&repo.0, "add note");
    assert_passed(&check(&repo.0));
}

#[test]
fn an_uncommitted_breaking_change_fails() {
    let repo = repository();
    commit(&repo.0, "a second commit");
    assert_passed(&check(&repo.0));
    edit(
        &repo.0,
        "rpc GetSecurityConfigurationTask(",
        "rpc FetchSecurityConfigurationTask(",
    );
    assert_refused(&check(&repo.0), "GetSecurityConfigurationTask");
}

#[test]
fn a_branch_is_checked_against_the_main_it_started_from() {
    let repo = repository();
    git(&repo.0, &["checkout", "--quiet", "-b", "work"]);
    // Main moves on with a compatible field the branch does not have: the
    // branch lacking it is not a removal.
    git(&repo.0, &["checkout", "--quiet", "main"]);
    edit(&repo.0, NEW_FIELD.0, NEW_FIELD.1);
    commit(&repo.0, "main adds note");
    git(&repo.0, &["checkout", "--quiet", "work"]);
    edit(
        &repo.0,
        "optional string value = 2 ",
        "optional string hint = 3;\n  optional string value = 2 ",
    );
    commit(&repo.0, "branch adds hint");
    let out = check(&repo.0);
    assert_passed(&out);
    assert!(
        text(&out).contains("merge base with main"),
        "{}",
        text(&out)
    );

    edit(&repo.0, RENUMBER.0, RENUMBER.1);
    commit(&repo.0, "branch renumbers display_name");
    assert_refused(&check(&repo.0), "display_name");
}
