//! Field ownership and server-side apply, as structured-merge-diff does them for
//! kube-apiserver: `metadata.managedFields` lists, per manager and operation (`Apply` or
//! `Update`), the set of fields it owns in the `FieldsV1` encoding (`f:NAME` for a field,
//! `k:{"name":"app"}` for the element of a keyed list, `v:VALUE` for a value of a set, `.` for
//! the element itself). An apply makes the applier own exactly what it sent: fields owned by
//! another manager with a different value are conflicts (unless forced, which takes them over),
//! and fields it owned alone and no longer sends are removed. An update gives its manager the
//! fields it changed. List and map semantics come from the schema's `x-kubernetes-list-type` /
//! `x-kubernetes-list-map-keys` (or the patch merge key); lists without them are atomic.
//! Pure: no I/O; the work is bounded by the sizes of the objects.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::smp::{Schemas, MAX_DEPTH};

/// A set of field paths (structured-merge-diff's `fieldpath.Set`) as a tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSet {
    /// This node itself is in the set (a leaf, or a list element with `.`).
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

/// One path: `["f:spec", "f:containers", "k:{\"name\":\"app\"}", "f:image"]`.
pub type FieldPath = Vec<String>;

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Every member path, parents before children.
    pub fn paths(&self) -> Vec<FieldPath> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, at: &mut FieldPath, out: &mut Vec<FieldPath>) {
        if self.member && !at.is_empty() {
            out.push(at.clone());
        }
        for (k, c) in &self.children {
            at.push(k.clone());
            c.collect(at, out);
            at.pop();
        }
    }

    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        match path.split_first() {
            None => Some(self),
            Some((h, rest)) => self.children.get(h)?.node(rest),
        }
    }

    pub fn contains(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether `path` is a leaf of this set (a member with nothing under it).
    fn is_leaf(&self, path: &[String]) -> bool {
        self.node(path)
            .is_some_and(|n| n.member && n.children.is_empty())
    }

    pub fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = true,
            Some((h, rest)) => self.children.entry(h.clone()).or_default().insert(rest),
        }
    }

    /// Removes `path` (not what is under it), pruning nodes left empty.
    pub fn remove(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = false,
            Some((h, rest)) => {
                if let Some(c) = self.children.get_mut(h) {
                    c.remove(rest);
                    if c.is_empty() {
                        self.children.remove(h);
                    }
                }
            }
        }
    }

    /// The `FieldsV1` JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    /// Reads `FieldsV1` JSON; None when it is not that shape.
    pub fn from_fields_v1(v: &Value) -> Option<FieldSet> {
        fn node(v: &Value, depth: usize) -> Option<FieldSet> {
            let m = v.as_object()?;
            if depth > MAX_DEPTH {
                return None;
            }
            let mut n = FieldSet {
                member: m.is_empty() || m.contains_key("."),
                ..Default::default()
            };
            for (k, c) in m.iter().filter(|(k, _)| *k != ".") {
                let ok = ["f:", "k:", "v:", "i:"].iter().any(|p| k.starts_with(p));
                if !ok {
                    return None;
                }
                n.children.insert(k.clone(), node(c, depth + 1)?);
            }
            Some(n)
        }
        let mut root = node(v, 0)?;
        root.member = false;
        Some(root)
    }
}

/// How a list is merged by apply.
enum ListType {
    Map(Vec<String>),
    Set,
    Atomic,
}

fn list_type(schema: Option<&Value>) -> ListType {
    let ext = |k: &str| schema.and_then(|s| s.get(k));
    match ext("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => {
            let keys: Vec<String> = ext("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if keys.is_empty() {
                ListType::Atomic
            } else {
                ListType::Map(keys)
            }
        }
        Some("set") => ListType::Set,
        Some(_) => ListType::Atomic,
        None => {
            let merge = super::smp::patch_strategy(schema).contains(&"merge");
            match ext("x-kubernetes-patch-merge-key").and_then(Value::as_str) {
                Some(k) if merge => ListType::Map(vec![k.to_string()]),
                None if merge => ListType::Set,
                _ => ListType::Atomic,
            }
        }
    }
}

fn atomic_map(schema: Option<&Value>) -> bool {
    schema
        .and_then(|s| s.get("x-kubernetes-map-type"))
        .and_then(Value::as_str)
        == Some("atomic")
}

/// The `k:` path element of a keyed list element, or None when it has none of the keys.
fn element_key(elem: &Value, keys: &[String]) -> Option<String> {
    let mut m = Map::new();
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    for k in sorted {
        if let Some(v) = elem.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    (!m.is_empty()).then(|| format!("k:{}", Value::Object(m)))
}

/// The schema-aware walker over objects.
#[derive(Clone, Copy)]
pub struct Shape<'s> {
    pub schemas: Schemas<'s>,
    pub root: Option<&'s Value>,
}

impl<'s> Shape<'s> {
    /// The fields `obj` sets, without the ones the server owns (`apiVersion`, `kind`, the
    /// system metadata, and `status`, which has its own writers).
    pub fn fields_of(&self, obj: &Value) -> FieldSet {
        let mut set = match obj {
            Value::Object(m) => self.object(m, self.root, 0),
            _ => FieldSet::default(),
        };
        for p in [
            &["f:apiVersion"][..],
            &["f:kind"],
            &["f:status"],
            &["f:metadata", "f:name"],
            &["f:metadata", "f:namespace"],
            &["f:metadata", "f:uid"],
            &["f:metadata", "f:resourceVersion"],
            &["f:metadata", "f:generation"],
            &["f:metadata", "f:creationTimestamp"],
            &["f:metadata", "f:deletionTimestamp"],
            &["f:metadata", "f:deletionGracePeriodSeconds"],
            &["f:metadata", "f:managedFields"],
        ] {
            let path: FieldPath = p.iter().map(|s| s.to_string()).collect();
            remove_subtree(&mut set, &path);
        }
        set.member = false;
        set
    }

    fn object(&self, m: &Map<String, Value>, schema: Option<&'s Value>, depth: usize) -> FieldSet {
        let mut n = FieldSet::default();
        for (k, v) in m {
            if v.is_null() {
                continue;
            }
            let field = self.schemas.field(schema, k);
            n.children
                .insert(format!("f:{k}"), self.value(v, field, depth + 1));
        }
        n
    }

    fn value(&self, v: &Value, schema: Option<&'s Value>, depth: usize) -> FieldSet {
        let leaf = FieldSet {
            member: true,
            ..Default::default()
        };
        if depth > MAX_DEPTH {
            return leaf;
        }
        match v {
            Value::Object(m) if !m.is_empty() && !atomic_map(schema) => {
                self.object(m, schema, depth)
            }
            Value::Array(a) if !a.is_empty() => match list_type(schema) {
                ListType::Map(keys) => {
                    let items = self.schemas.items(schema);
                    let mut n = FieldSet::default();
                    for e in a {
                        let (Some(k), Value::Object(em)) = (element_key(e, &keys), e) else {
                            return leaf;
                        };
                        let mut c = self.object(em, items, depth);
                        c.member = true;
                        n.children.insert(k, c);
                    }
                    n
                }
                ListType::Set => {
                    let mut n = FieldSet::default();
                    for e in a {
                        n.children.insert(format!("v:{e}"), leaf.clone());
                    }
                    n
                }
                ListType::Atomic => leaf,
            },
            _ => leaf,
        }
    }

    /// Merges the applied configuration `cfg` into `live`: maps and keyed lists merge, sets
    /// are unions, everything else is replaced.
    fn merge(&self, live: &mut Value, cfg: &Value, schema: Option<&'s Value>, depth: usize) {
        match (live, cfg) {
            (Value::Object(l), Value::Object(c)) if depth <= MAX_DEPTH && !atomic_map(schema) => {
                for (k, v) in c {
                    if v.is_null() {
                        l.remove(k);
                        continue;
                    }
                    let field = self.schemas.field(schema, k);
                    match l.get_mut(k) {
                        Some(old) => self.merge(old, v, field, depth + 1),
                        None => {
                            l.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (Value::Array(l), Value::Array(c)) if depth <= MAX_DEPTH => match list_type(schema) {
                ListType::Map(keys) => {
                    let items = self.schemas.items(schema);
                    for e in c {
                        let key = element_key(e, &keys);
                        match l
                            .iter()
                            .position(|x| key.is_some() && element_key(x, &keys) == key)
                        {
                            Some(i) => self.merge(&mut l[i], e, items, depth + 1),
                            None => l.push(e.clone()),
                        }
                    }
                }
                ListType::Set => {
                    for e in c {
                        if !l.contains(e) {
                            l.push(e.clone());
                        }
                    }
                }
                ListType::Atomic => *l = c.clone(),
            },
            (live, cfg) => *live = cfg.clone(),
        }
    }
}

fn remove_subtree(set: &mut FieldSet, path: &[String]) {
    match path.split_first() {
        None => {}
        Some((h, [])) => {
            set.children.remove(h);
        }
        Some((h, rest)) => {
            if let Some(c) = set.children.get_mut(h) {
                remove_subtree(c, rest);
                if c.is_empty() {
                    set.children.remove(h);
                }
            }
        }
    }
}

/// The value at `path` in `obj`.
pub fn get<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut v = obj;
    for pe in path {
        v = step(v, pe)?;
    }
    Some(v)
}

fn step<'a>(v: &'a Value, pe: &str) -> Option<&'a Value> {
    match pe.strip_prefix("f:") {
        Some(f) => v.get(f),
        None => v.as_array()?.get(index_of(v, pe)?),
    }
}

fn step_mut<'a>(v: &'a mut Value, pe: &str) -> Option<&'a mut Value> {
    match pe.strip_prefix("f:") {
        Some(f) => v.get_mut(f),
        None => {
            let i = index_of(v, pe)?;
            v.as_array_mut()?.get_mut(i)
        }
    }
}

/// The index of the list element a `k:` or `v:` path element names.
fn index_of(v: &Value, pe: &str) -> Option<usize> {
    let list = v.as_array()?;
    if let Some(k) = pe.strip_prefix("k:") {
        let keys: Map<String, Value> = serde_json::from_str(k).ok()?;
        return list
            .iter()
            .position(|e| keys.iter().all(|(kk, kv)| e.get(kk) == Some(kv)));
    }
    let want: Value = serde_json::from_str(pe.strip_prefix("v:")?).ok()?;
    list.iter().position(|e| *e == want)
}

/// Removes the field or element at `path` from `obj`.
fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut v = obj;
    for pe in parent {
        match step_mut(v, pe) {
            Some(next) => v = next,
            None => return,
        }
    }
    match last.strip_prefix("f:") {
        Some(f) => {
            if let Value::Object(m) = v {
                m.remove(f);
            }
        }
        None => {
            if let Some(i) = index_of(v, last) {
                if let Value::Array(a) = v {
                    a.remove(i);
                }
            }
        }
    }
}

/// A `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager, "operation": self.operation,
            "apiVersion": self.api_version, "time": self.time,
            "fieldsType": "FieldsV1", "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(s) = &self.subresource {
            v["subresource"] = json!(s);
        }
        v
    }

    fn from_json(v: &Value) -> Option<Entry> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Entry {
            manager: text("manager")?,
            operation: text("operation").filter(|o| o == "Apply" || o == "Update")?,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time").unwrap_or_default(),
            subresource: text("subresource"),
            fields: FieldSet::from_fields_v1(v.get("fieldsV1")?)?,
        })
    }
}

/// The entries of an object's `metadata.managedFields` (entries that are not valid are
/// dropped, as kube-apiserver resets managed fields it cannot read).
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    super::set_meta(
        obj,
        "managedFields",
        if list.is_empty() {
            Value::Null
        } else {
            Value::Array(list)
        },
    );
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    /// `.spec.replicas`, `.spec.template.spec.containers[name="app"].image`.
    pub field: String,
}

/// The path as kube-apiserver prints it in conflict messages.
pub fn display(path: &[String]) -> String {
    let mut s = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let keys: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let inner: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", inner.join(",")));
        } else if let Some(v) = pe.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// What one write asks of field ownership.
pub struct Write<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    /// RFC 3339, the entry's `time`.
    pub now: &'a str,
}

impl Shape<'_> {
    /// Server-side apply of `cfg` by `w.manager` over `live` (None: the object is new).
    /// Returns the object to store, with its managedFields, or the conflicts.
    pub fn apply(
        &self,
        live: Option<&Value>,
        cfg: &Value,
        w: &Write<'_>,
        force: bool,
    ) -> Result<Value, Vec<Conflict>> {
        let mut entries = live.map(entries).unwrap_or_default();
        let mut cfg = cfg.clone();
        if let Some(m) = cfg.as_object_mut() {
            m.remove("status");
        }
        if let Some(m) = cfg.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        let applied = self.fields_of(&cfg);
        let empty = json!({});
        let base = live.unwrap_or(&empty);
        let mut conflicts = Vec::new();
        let paths = applied.paths();
        for e in entries.iter_mut().filter(|e| e.manager != w.manager) {
            for p in &paths {
                let differs = applied.is_leaf(p) && get(base, p) != get(&cfg, p);
                if e.fields.contains(p) && differs {
                    if force {
                        e.fields.remove(p);
                    } else {
                        conflicts.push(Conflict {
                            manager: e.manager.clone(),
                            field: display(p),
                        });
                    }
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(conflicts);
        }
        let mine = |e: &Entry| e.manager == w.manager && e.operation == "Apply";
        let previous = entries
            .iter()
            .find(|e| mine(e))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let mut result = base.clone();
        let mut gone: Vec<FieldPath> = previous
            .paths()
            .into_iter()
            .filter(|p| !applied.contains(p))
            .filter(|p| !entries.iter().any(|e| !mine(e) && e.fields.contains(p)))
            .collect();
        // parents first: an element goes whole (its key fields would be gone after its
        // fields), and what was under it is then not found
        gone.sort_by_key(Vec::len);
        for p in &gone {
            remove_at(&mut result, p);
        }
        self.merge(&mut result, &cfg, self.root, 0);
        entries.retain(|e| !mine(e));
        entries.push(Entry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            subresource: None,
            fields: applied,
        });
        write_entries(&mut result, entries);
        Ok(result)
    }

    /// Records an update (create, replace, patch) by `w.manager` from `old` (None: a create)
    /// to `new`: the manager's `Update` entry gains the fields it changed, which every other
    /// manager loses, and fields no longer in the object leave every entry.
    pub fn record_update(&self, old: Option<&Value>, new: &mut Value, w: &Write<'_>) {
        let mut entries = entries(new);
        let now_set = self.fields_of(new);
        let before = old.map(|o| self.fields_of(o)).unwrap_or_default();
        let changed: Vec<FieldPath> = now_set
            .paths()
            .into_iter()
            .filter(|p| match old {
                None => true,
                Some(o) => !before.contains(p) || (now_set.is_leaf(p) && get(o, p) != get(new, p)),
            })
            .collect();
        let removed: Vec<FieldPath> = before
            .paths()
            .into_iter()
            .filter(|p| !now_set.contains(p))
            .collect();
        let mine = |e: &Entry| e.manager == w.manager && e.operation == "Update";
        for e in entries.iter_mut() {
            for p in &removed {
                e.fields.remove(p);
            }
            if !mine(e) {
                for p in &changed {
                    e.fields.remove(p);
                }
            }
        }
        if !changed.is_empty() {
            let at = entries.iter().position(mine);
            let mut entry = match at {
                Some(i) => entries.remove(i),
                None => Entry {
                    manager: w.manager.to_string(),
                    operation: "Update".into(),
                    api_version: w.api_version.to_string(),
                    time: String::new(),
                    subresource: None,
                    fields: FieldSet::default(),
                },
            };
            for p in &changed {
                entry.fields.insert(p);
            }
            entry.time = w.now.to_string();
            entry.api_version = w.api_version.to_string();
            entries.push(entry);
        }
        write_entries(new, entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Map<String, Value> {
        let d = json!({
            "D": {"type": "object", "properties": {"spec": {"$ref": "#/components/schemas/S"}}},
            "S": {"type": "object", "properties": {
                "containers": {"type": "array", "items": {"type": "object"},
                    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
                "finalizers": {"type": "array", "items": {"type": "string"},
                    "x-kubernetes-patch-strategy": "merge"},
                "args": {"type": "array", "items": {"type": "string"}}}},
        });
        d.as_object().unwrap().clone()
    }

    fn with<T>(f: impl FnOnce(Shape<'_>) -> T) -> T {
        let d = defs();
        let shape = Shape {
            schemas: Schemas { definitions: &d },
            root: d.get("D"),
        };
        f(shape)
    }

    fn w(m: &str) -> Write<'_> {
        Write {
            manager: m,
            api_version: "apps/v1",
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn field_sets_encode_as_fields_v1() {
        with(|s| {
            let obj = json!({"apiVersion": "v1", "metadata": {"name": "x", "labels": {"a": "1"}},
                "spec": {"replicas": 1, "containers": [{"name": "app", "image": "i"}],
                         "finalizers": ["f"], "args": ["a"], "empty": {}}});
            let v1 = s.fields_of(&obj).to_fields_v1();
            assert_eq!(
                v1,
                json!({"f:metadata": {"f:labels": {"f:a": {}}},
                    "f:spec": {"f:replicas": {}, "f:args": {}, "f:empty": {}, "f:finalizers": {"v:\"f\"": {}},
                        "f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}}}}})
            );
            assert_eq!(FieldSet::from_fields_v1(&v1).unwrap(), s.fields_of(&obj));
            assert!(FieldSet::from_fields_v1(&json!({"x": {}})).is_none());
        });
    }

    #[test]
    fn apply_twice_keeps_one_owner_and_removes_what_it_stopped_sending() {
        with(|s| {
            let cfg = json!({"spec": {"replicas": 2, "paused": false,
                "containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s"}]}});
            let obj = s.apply(None, &cfg, &w("me"), false).unwrap();
            assert_eq!(obj["spec"]["replicas"], 2);
            let e = entries(&obj);
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].operation, "Apply");
            let cfg2 = json!({"spec": {"replicas": 3,
                "containers": [{"name": "app", "image": "a:2"}]}});
            let obj2 = s.apply(Some(&obj), &cfg2, &w("me"), false).unwrap();
            assert_eq!(obj2["spec"]["replicas"], 3);
            assert!(obj2["spec"].get("paused").is_none(), "{obj2}");
            assert_eq!(
                obj2["spec"]["containers"],
                json!([{"name": "app", "image": "a:2"}])
            );
        });
    }

    #[test]
    fn a_field_owned_by_another_manager_conflicts_unless_forced() {
        with(|s| {
            let obj = s
                .apply(
                    None,
                    &json!({"spec": {"replicas": 2, "x": 1}}),
                    &w("a"),
                    false,
                )
                .unwrap();
            // same value: shared, no conflict
            let shared = s
                .apply(
                    Some(&obj),
                    &json!({"spec": {"replicas": 2}}),
                    &w("b"),
                    false,
                )
                .unwrap();
            assert_eq!(entries(&shared).len(), 2);
            let err = s
                .apply(
                    Some(&obj),
                    &json!({"spec": {"replicas": 5}}),
                    &w("b"),
                    false,
                )
                .unwrap_err();
            assert_eq!(
                err,
                vec![Conflict {
                    manager: "a".into(),
                    field: ".spec.replicas".into()
                }]
            );
            let forced = s
                .apply(Some(&obj), &json!({"spec": {"replicas": 5}}), &w("b"), true)
                .unwrap();
            assert_eq!(forced["spec"]["replicas"], 5);
            let e = entries(&forced);
            let a = e.iter().find(|e| e.manager == "a").unwrap();
            assert!(!a.fields.contains(&["f:spec".into(), "f:replicas".into()]));
            assert!(a.fields.contains(&["f:spec".into(), "f:x".into()]));
            // a field still owned by another manager stays when the applier drops it
            let after = s
                .apply(Some(&shared), &json!({"spec": {}}), &w("b"), false)
                .unwrap();
            assert_eq!(after["spec"]["replicas"], 2);
        });
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        with(|s| {
            let obj = s
                .apply(
                    None,
                    &json!({"spec": {"replicas": 2, "x": 1}}),
                    &w("a"),
                    false,
                )
                .unwrap();
            let mut new = obj.clone();
            new["spec"]["replicas"] = json!(4);
            new["spec"]["y"] = json!(true);
            s.record_update(Some(&obj), &mut new, &w("kubectl-edit"));
            let e = entries(&new);
            let edit = e.iter().find(|e| e.manager == "kubectl-edit").unwrap();
            assert_eq!(edit.operation, "Update");
            assert!(edit
                .fields
                .contains(&["f:spec".into(), "f:replicas".into()]));
            assert!(edit.fields.contains(&["f:spec".into(), "f:y".into()]));
            assert!(!edit.fields.contains(&["f:spec".into(), "f:x".into()]));
            let a = e.iter().find(|e| e.manager == "a").unwrap();
            assert!(!a.fields.contains(&["f:spec".into(), "f:replicas".into()]));
            // a create owns everything it set
            let mut created =
                json!({"metadata": {"name": "n", "labels": {"l": "1"}}, "data": {"k": "v"}});
            s.record_update(None, &mut created, &w("kubectl-create"));
            let e = entries(&created);
            assert_eq!(
                e[0].fields.to_fields_v1(),
                json!({"f:metadata": {"f:labels": {"f:l": {}}}, "f:data": {"f:k": {}}})
            );
        });
    }

    #[test]
    fn conflict_paths_print_like_kube() {
        let p: FieldPath = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"app\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(display(&p), ".spec.containers[name=\"app\"].image");
    }
}
