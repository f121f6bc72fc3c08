//! Indeterminate operations that nothing observes are left out of the search; ones that
//! something could observe are kept.

use checker::Model;
use workloads::{CasRegister, Kv, KvOp, RegisterOp};

#[test]
fn kv_appends_and_puts_are_observed_only_by_gets_that_contain_them() {
    let get = KvOp::Get("a1 a2 ".into());
    let seen = KvOp::Append("a2 ".into());
    let unseen = KvOp::Append("a3 ".into());
    assert!(!Kv.unobservable(&seen, &[&get]));
    assert!(Kv.unobservable(&unseen, &[&get, &seen]));
    assert!(Kv.unobservable(&KvOp::Put("p9 ".into()), &[&get]));
    assert!(
        !Kv.unobservable(&KvOp::Append(String::new()), &[&get]),
        "an empty append is in every string"
    );
}

#[test]
fn register_writes_are_observed_by_reads_and_cas_from_their_value() {
    let v = |n: i64| serde_json::json!(n);
    let write = RegisterOp::Write(v(7));
    assert!(!CasRegister.unobservable(&write, &[&RegisterOp::Read(v(7))]));
    let cas_from = RegisterOp::Cas { from: v(7), to: v(8), known: false };
    assert!(!CasRegister.unobservable(&write, &[&cas_from]));
    assert!(CasRegister.unobservable(&write, &[&RegisterOp::Read(v(6)), &RegisterOp::Write(v(7))]));
    let info_cas = RegisterOp::Cas { from: v(1), to: v(2), known: false };
    assert!(CasRegister.unobservable(&info_cas, &[&RegisterOp::Read(v(1))]));
    assert!(!CasRegister.unobservable(&info_cas, &[&RegisterOp::Read(v(2))]));
    let same = RegisterOp::Cas { from: v(3), to: v(3), known: false };
    assert!(
        CasRegister.unobservable(&same, &[&RegisterOp::Read(v(3))]),
        "a cas to the same value changes nothing"
    );
    assert!(!CasRegister.unobservable(&RegisterOp::Read(v(3)), &[]));
}
