//! In-memory task storage in insertion order.
//!
//! Each task gets a sequence number when first stored. Listing walks the
//! sequence, and a page's `$skiptoken` names the last sequence number served,
//! so paging stays correct when tasks are created or deleted between pages
//! (no item is skipped or served twice).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

#[derive(Default)]
pub struct TaskStore {
    by_seq: BTreeMap<u64, Value>,
    seq_of: HashMap<String, u64>,
    next_seq: u64,
    /// The notes of each task's status changes, oldest first. Graph keeps
    /// them but never returns them, so they live outside the task object.
    notes: HashMap<String, Vec<String>>,
}

/// One page of a listing.
pub struct Page {
    pub items: Vec<Value>,
    /// Sequence number to resume after, when more matching tasks remain.
    pub resume_after: Option<u64>,
}

impl TaskStore {
    pub fn with_tasks(tasks: impl IntoIterator<Item = (String, Value)>) -> Self {
        let mut store = TaskStore::default();
        for (id, task) in tasks {
            store.put(id, task);
        }
        store
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.seq_of.get(id).and_then(|seq| self.by_seq.get(seq))
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        let seq = self.seq_of.get(id)?;
        self.by_seq.get_mut(seq)
    }

    /// Stores `task` under `id`; replacing an existing task keeps its place.
    pub fn put(&mut self, id: String, task: Value) {
        if let Some(seq) = self.seq_of.get(&id) {
            self.by_seq.insert(*seq, task);
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.seq_of.insert(id, seq);
        self.by_seq.insert(seq, task);
    }

    /// Records the note of a status change of the task `id`.
    pub fn add_note(&mut self, id: &str, note: String) {
        self.notes.entry(id.to_owned()).or_default().push(note);
    }

    /// The notes of the task's status changes, oldest first.
    pub fn notes(&self, id: &str) -> &[String] {
        self.notes.get(id).map_or(&[], Vec::as_slice)
    }

    pub fn remove(&mut self, id: &str) -> bool {
        self.notes.remove(id);
        match self.seq_of.remove(id) {
            Some(seq) => self.by_seq.remove(&seq).is_some(),
            None => false,
        }
    }

    /// How many tasks satisfy `keep`.
    pub fn count(&self, keep: impl Fn(&Value) -> bool) -> usize {
        self.by_seq.values().filter(|task| keep(task)).count()
    }

    /// Up to `top` tasks after sequence `after` that satisfy `keep`.
    pub fn page(&self, after: Option<u64>, top: usize, keep: impl Fn(&Value) -> bool) -> Page {
        let start = after.map_or(0, |seq| seq.saturating_add(1));
        let mut matching = self.by_seq.range(start..).filter(|(_, task)| keep(task));
        let mut items = Vec::with_capacity(top.min(self.by_seq.len()));
        let mut last = None;
        for (seq, task) in matching.by_ref().take(top) {
            items.push(task.clone());
            last = Some(*seq);
        }
        let resume_after = if matching.next().is_some() {
            last
        } else {
            None
        };
        Page {
            items,
            resume_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(n: u64) -> TaskStore {
        TaskStore::with_tasks((0..n).map(|i| (format!("t{i}"), json!({ "n": i }))))
    }

    #[test]
    fn pages_in_insertion_order_and_survive_deletes() {
        let mut s = store(5);
        let first = s.page(None, 2, |_| true);
        assert_eq!(first.items, vec![json!({"n":0}), json!({"n":1})]);
        assert_eq!(first.resume_after, Some(1));
        assert!(s.remove("t1"));
        assert!(s.remove("t2"));
        let second = s.page(first.resume_after, 2, |_| true);
        assert_eq!(second.items, vec![json!({"n":3}), json!({"n":4})]);
        assert_eq!(second.resume_after, None);
    }

    #[test]
    fn replace_keeps_place_and_filter_limits_next_link() {
        let mut s = store(3);
        s.put("t0".into(), json!({"n": 9}));
        let page = s.page(None, 1, |t| t["n"] != 1);
        assert_eq!(page.items, vec![json!({"n":9})]);
        assert_eq!(page.resume_after, Some(0));
        let rest = s.page(Some(0), 1, |t| t["n"] != 1);
        assert_eq!(rest.items, vec![json!({"n":2})]);
        assert_eq!(rest.resume_after, None);
        assert!(!s.remove("missing"));
        assert!(s.get("t0").is_some());
    }
}
