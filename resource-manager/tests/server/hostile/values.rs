//! Values for hostile requests: junk strings, near misses of every id's form, numbers that are
//! not positive, and well-formed ids that no one handed out.

use proptest::prelude::*;

use super::scene::Ids;

/// Any string at all: empty, short, unicode, control characters, long.
pub(super) fn junk() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        "\\PC{0,30}",
        "[\\x00-\\x1f ]{1,5}",
        ".{0,12}".prop_map(|s| s.repeat(400)),
    ]
    .boxed()
}

/// Strings that are not ids of the kind `T`: junk, and near misses of the id's form.
pub(super) fn not_an_id<T: std::str::FromStr>(prefix: &'static str) -> BoxedStrategy<String> {
    let near = (
        prop_oneof![Just(prefix), Just("container_e1"), Just("APPLICATION")],
        prop::collection::vec(
            prop_oneof![
                Just(String::new()),
                "-?[0-9]{1,25}",
                "e[0-9]{0,3}",
                "[a-z]{1,4}",
            ],
            0..6,
        ),
    )
        .prop_map(|(p, parts)| format!("{p}_{}", parts.join("_")));
    prop_oneof![junk(), near]
        .prop_filter("not a valid id", |s| s.parse::<T>().is_err())
        .boxed()
}

pub(super) fn bad_app_id() -> BoxedStrategy<String> {
    not_an_id::<spindle_containers::ApplicationId>("application")
}

pub(super) fn bad_attempt_id() -> BoxedStrategy<String> {
    not_an_id::<spindle_containers::AttemptId>("appattempt")
}

pub(super) fn bad_container_id() -> BoxedStrategy<String> {
    not_an_id::<spindle_containers::ContainerId>("container")
}

pub(super) fn bad_node_id() -> BoxedStrategy<String> {
    prop_oneof![
        junk(),
        "[a-z0-9.]{1,10}",
        "[a-z0-9.]{0,10}:[0-9]{6,9}",
        "[a-z0-9.]{1,10}:-?[0-9]{0,3}x",
    ]
    .prop_filter("not a node id", |s| {
        s.parse::<spindle_containers::NodeId>().is_err()
    })
    .boxed()
}

pub(super) fn bad_sha() -> BoxedStrategy<String> {
    prop_oneof![
        junk(),
        "[0-9A-F]{64}",
        "[0-9a-f]{63}",
        "[0-9a-f]{65}",
        "[0-9a-g]{64}",
    ]
    .prop_filter("not a sha256", |s| {
        !(s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    })
    .boxed()
}

pub(super) fn not_positive_i64() -> BoxedStrategy<i64> {
    prop_oneof![Just(0i64), Just(i64::MIN), i64::MIN..=0].boxed()
}

pub(super) fn not_positive_i32() -> BoxedStrategy<i32> {
    prop_oneof![Just(0i32), Just(i32::MIN), i32::MIN..=0].boxed()
}

/// Well-formed ids that no one handed out: `application_<ts>_<seq>` of another cluster or a
/// sequence not reached yet.
pub(super) fn unknown_app_id(ts: u64) -> BoxedStrategy<String> {
    prop_oneof![
        (100u32..=9999).prop_map(move |seq| format!("application_{ts}_{seq:04}")),
        (1u64..ts, 1u32..=9999).prop_map(|(t, seq)| format!("application_{t}_{seq:04}")),
    ]
    .boxed()
}

pub(super) fn unknown_attempt_id(ids: &Ids) -> BoxedStrategy<String> {
    let ts = ids.ts;
    let app = ids
        .running_app
        .trim_start_matches("application_")
        .to_string();
    prop_oneof![
        (100u32..=9999, 1u32..5)
            .prop_map(move |(seq, n)| format!("appattempt_{ts}_{seq:04}_{n:06}")),
        (2u32..999).prop_map(move |n| format!("appattempt_{app}_{n:06}")),
    ]
    .boxed()
}

/// Names that are not a plain file name inside a directory.
pub(super) fn bad_file_name() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_string()),
        Just("..".to_string()),
        "[a-z.]{0,5}/[a-z.]{0,5}",
        "[a-z]{256,300}",
        ("[a-z]{0,3}", "[a-z]{0,3}").prop_map(|(a, b)| format!("{a}\0{b}")),
    ]
    .boxed()
}
