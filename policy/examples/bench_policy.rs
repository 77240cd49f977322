//! Decision latency of `OwnerPolicies` with 1, 100 and 10,000 policies for one owner, in the two
//! shapes the UMA grant issue names: (a) N resources with one share each, (b) one resource shared
//! with N people. Prints the build time and µs per decision for a permit (the person a share names) and a
//! deny (a stranger on a shared resource) (and, for
//! information, per missing-claims analysis of an unidentified party).
//!
//! Run: `cargo run --release -p custodia-policy --example bench_policy [iterations]`
//! (target: < 100 µs per decision at 10,000 policies).

use std::hint::black_box;
use std::time::{Duration, Instant};

use custodia_policy::{
    OwnerPolicies, Party, PersonSelector, PolicySource, RequestContext, ResourceInfo,
    ResourceSelector, ShareTemplate, StoredPolicy,
};

const OWNER: &str = "owner-1";
const IDP: &str = "https://idp.example";

fn resource(i: usize) -> ResourceInfo {
    ResourceInfo {
        id: format!("res-{i}"),
        owner: OWNER.to_owned(),
        resource_server: "rs-1".to_owned(),
        resource_type: Some("Observation".to_owned()),
        name: None,
        scopes: vec!["read".to_owned(), "write".to_owned()],
    }
}

fn person(i: usize) -> Party {
    Party {
        issuer: Some(IDP.to_owned()),
        subject: Some(format!("person-{i}")),
        ..Party::default()
    }
}

fn share(resource: usize, person: usize) -> StoredPolicy {
    StoredPolicy {
        id: format!("share-{resource}-{person}"),
        source: PolicySource::Share(ShareTemplate {
            resource: ResourceSelector::Resource(format!("res-{resource}")),
            with: PersonSelector::Subject {
                issuer: IDP.to_owned(),
                subject: format!("person-{person}"),
            },
            scopes: vec!["read".to_owned()],
            until: Some(4_000_000_000),
            require_claim: None,
        }),
    }
}

fn per_call(iterations: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations.max(1))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run(
    label: &str,
    n: usize,
    policies: &[StoredPolicy],
    permit: (&Party, &ResourceInfo),
    deny: (&Party, &ResourceInfo),
    iterations: u32,
) {
    let ctx = RequestContext {
        now: 1_800_000_000,
        client_id: "client-1".to_owned(),
        claim_token_issuer: None,
        sender_constrained: false,
    };
    let start = Instant::now();
    let owner = match OwnerPolicies::build(OWNER, policies) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{label}: build failed: {e:?}");
            return;
        }
    };
    let build = start.elapsed();
    let p = owner.decide(permit.0, permit.1, "read", &ctx);
    let d = owner.decide(deny.0, deny.1, "read", &ctx);
    if !p.permit || d.permit {
        eprintln!("{label}: unexpected decisions {p:?} {d:?}");
        return;
    }
    let permit_us = per_call(iterations, || {
        black_box(owner.decide(black_box(permit.0), permit.1, "read", &ctx));
    });
    let deny_us = per_call(iterations, || {
        black_box(owner.decide(black_box(deny.0), deny.1, "read", &ctx));
    });
    let anonymous = Party::default();
    let missing_us = per_call(iterations.div_ceil(10), || {
        black_box(owner.missing_claims(black_box(&anonymous), permit.1, "read", &ctx));
    });
    println!(
        "{label:<34} {n:>6} policies  build {:>9.2} ms  permit {:>8.2} µs  deny {:>8.2} µs  missing_claims(anonymous) {:>9.2} µs",
        ms(build),
        permit_us,
        deny_us,
        missing_us
    );
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    println!("iterations per measurement: {iterations}");
    for n in [1usize, 100, 10_000] {
        // (a) n resources, one share each (resource i shared with person i)
        let policies: Vec<StoredPolicy> = (0..n).map(|i| share(i, i)).collect();
        let last = n - 1;
        run(
            "(a) n resources, one share each",
            n,
            &policies,
            (&person(last), &resource(last)),
            (&person(n + 1), &resource(last)),
            iterations,
        );
        // (b) one resource shared with n people
        let policies: Vec<StoredPolicy> = (0..n).map(|i| share(0, i)).collect();
        run(
            "(b) one resource, n people",
            n,
            &policies,
            (&person(last), &resource(0)),
            (&person(n + 1), &resource(0)),
            iterations,
        );
    }
}
