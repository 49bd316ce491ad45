//! Several `agentos serve` processes on one PostgreSQL database behave as one server: a
//! run started on one is listed, polled, cancelled and followed through another; a
//! server killed mid-run has its runs taken over, and the background runs it accepted run
//! elsewhere; background runs a full server accepted are run by another, cancelled
//! through another while they wait, or followed from where they were accepted; a stalled
//! server never overwrites the runs settled meanwhile; 500 runs in flight at once over
//! three servers are stored once each.
//!
//! See: issue 13 ("PostgreSQL").

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::processes::{Peer, Stream, content_piece, last_assistant, wait_stored};
use crate::serve::{Server, get, post_form};
use crate::util::postgres::TestDb;

const FAST_TAKEOVER: (&str, &str) = ("AGENTOS_OWNER_TIMEOUT_SECS", "1");

/// Server A on a fresh database, with `args`; its peers share its config and database.
fn cluster(db: &TestDb, args: &[&str]) -> Server {
    Server::start_full(None, args, &[("AGENTOS_DB", &db.url), FAST_TAKEOVER])
}

fn peer(a: &Server, db: &TestDb) -> Peer {
    Peer::start(a, &[("AGENTOS_DB", &db.url), FAST_TAKEOVER])
}

#[test]
fn a_run_on_one_server_is_listed_polled_followed_and_cancelled_through_another() {
    let db = TestDb::create();
    let a = cluster(&db, &[]);
    let b = peer(&a, &db);
    let mut stream = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "slow story"),
            ("stream", "true"),
            ("session_id", "s1"),
        ],
    );
    let started = stream.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    stream.until(Duration::from_secs(10), |n, e| {
        content_piece(n, e, "slow-2 ")
    });

    // Listed and polled through B.
    let sessions = get(&b.url("/sessions")).json();
    assert_eq!(sessions["data"][0]["session_id"], "s1", "{sessions}");
    let polled = get(&b.url(&format!("/agents/story-writer/runs/{run_id}?session_id=s1")));
    assert_eq!(polled.status, 200, "{}", polled.body);
    assert_eq!(polled.json()["status"], "RUNNING");

    // Followed through B from after the fourth event to the end, each event once.
    let mut resumed = Stream::open(
        &b.url(&format!("/agents/story-writer/runs/{run_id}/resume")),
        &[("last_event_index", "3"), ("session_id", "s1")],
    );
    resumed.until(Duration::from_secs(5), |n, _| n == "replay");
    let followed = resumed.rest(Duration::from_secs(30));
    let mut original = stream.seen.clone();
    original.extend(stream.rest(Duration::from_secs(30)));
    let expected: Vec<&(String, Value)> = original.iter().skip(4).collect();
    assert_eq!(followed.len(), expected.len());
    for (i, ((name, event), (want_name, want))) in followed.iter().zip(expected).enumerate() {
        assert_eq!(name, want_name);
        assert_eq!(event["event_index"], json!(4 + i));
        let mut event = event.clone();
        event.as_object_mut().unwrap().remove("event_index");
        assert_eq!(&event, want);
    }
    assert_eq!(followed.last().unwrap().0, "RunCompleted");

    // Cancelled through B: A's client sees it at once (LISTEN/NOTIFY, not a poll).
    let mut stream = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "slow story"),
            ("stream", "true"),
            ("session_id", "s2"),
        ],
    );
    let started = stream.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    stream.until(Duration::from_secs(10), |n, e| {
        content_piece(n, e, "slow-0 ")
    });
    // B follows it too, on a stream of its own.
    let mut on_b = Stream::open(
        &b.url(&format!("/agents/story-writer/runs/{run_id}/resume")),
        &[("session_id", "s2")],
    );
    on_b.until(Duration::from_secs(5), |n, e| {
        content_piece(n, e, "slow-0 ")
    });
    let asked = Instant::now();
    let answer = post_form(
        &b.url(&format!("/agents/story-writer/runs/{run_id}/cancel")),
        &[],
    );
    assert_eq!(answer.status, 200);
    stream.until(Duration::from_secs(5), |n, _| n == "RunCancelled");
    assert!(
        asked.elapsed() < Duration::from_millis(900),
        "well within the fallback poll: {:?}",
        asked.elapsed()
    );
    // B's stream ends with the cancel.
    on_b.until(Duration::from_secs(5), |n, _| n == "RunCancelled");
    assert!(on_b.rest(Duration::from_secs(5)).is_empty());
    let run = wait_stored(
        &b.url(&format!("/sessions/s2/runs/{run_id}")),
        Duration::from_secs(5),
        |r| r["status"] != "RUNNING",
    );
    assert_eq!(run["status"], "CANCELLED");
}

#[test]
fn a_killed_server_s_runs_are_taken_over_by_another() {
    let db = TestDb::create();
    let mut a = cluster(&db, &["--max-runs", "1"]);
    let mut stream = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "slow story"),
            ("stream", "true"),
            ("session_id", "s1"),
        ],
    );
    let started = stream.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    // A, full, accepts a background run it has no room to begin.
    let accepted = post_form(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "queued story"),
            ("stream", "false"),
            ("background", "true"),
            ("session_id", "queued"),
        ],
    );
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let queued_id = accepted.json()["run_id"].as_str().unwrap().to_string();
    stream.until(Duration::from_secs(10), |n, e| {
        content_piece(n, e, "slow-2 ")
    });
    std::thread::sleep(Duration::from_millis(400));
    a.terminate_hard();

    // B, started after A died, settles A's run and runs the one A accepted.
    let b = peer(&a, &db);
    let run = wait_stored(
        &b.url(&format!("/sessions/s1/runs/{run_id}")),
        Duration::from_secs(15),
        |r| r["status"] != "RUNNING",
    );
    assert_eq!(run["status"], "ERROR", "{run}");
    assert!(
        run["content"]
            .as_str()
            .unwrap()
            .starts_with("Run interrupted: agentos serve")
    );
    assert!(
        last_assistant(&run).starts_with("slow-0 slow-1 slow-2 "),
        "{run}"
    );
    let queued = wait_stored(
        &b.url(&format!(
            "/agents/story-writer/runs/{queued_id}?session_id=queued"
        )),
        Duration::from_secs(15),
        |r| r["status"] == "COMPLETED",
    );
    assert_eq!(
        queued["content"],
        "Story for 'queued story'. Starring Default-Bot. The end."
    );
}

#[test]
fn five_hundred_runs_in_flight_over_three_servers_are_stored_once() {
    let db = TestDb::create();
    let a = cluster(&db, &[]);
    let b = peer(&a, &db);
    let c = peer(&a, &db);
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];
    // Background runs, accepted at once; their model answers wait at the gate until all
    // 500 are in flight together.
    a.fake.close_gate();
    let threads: Vec<_> = (0..20)
        .map(|t| {
            let bases = bases.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| {
                        let n = t * 25 + i;
                        let answer = post_form(
                            &format!("{}/agents/story-writer/runs", bases[n % 3]),
                            &[
                                ("message", &format!("gated story {n}")),
                                ("stream", "false"),
                                ("background", "true"),
                                ("session_id", &format!("s{n}")),
                            ],
                        );
                        assert_eq!(answer.status, 202, "{}", answer.body);
                        answer.json()["run_id"].as_str().unwrap().to_string()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let run_ids: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect();
    assert_eq!(run_ids.len(), 500);
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.fake.waiting_at_gate() < 500 {
        assert!(
            Instant::now() < deadline,
            "{} of 500 runs in flight",
            a.fake.waiting_at_gate()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.fake.open_gate();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_runs(&db.url).2 < 500 {
        assert!(
            Instant::now() < deadline,
            "not all runs completed: {:?}",
            statuses(&db.url)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        count_runs(&db.url),
        (500, 500, 500),
        "(runs, distinct run ids, completed)"
    );
    // Every server gives the same answers: listings, and sessions in detail.
    let page = get(&format!("{}/sessions?limit=1000", bases[0])).json();
    assert_eq!(page["meta"]["total_count"], 500);
    for base in &bases[1..] {
        assert_eq!(
            get(&format!("{base}/sessions?limit=1000")).json(),
            page,
            "{base}"
        );
    }
    for n in [0, 123, 499] {
        let detail = get(&format!("{}/sessions/s{n}", bases[0]));
        assert_eq!(detail.status, 200, "{}", detail.body);
        let detail = detail.json();
        assert_eq!(detail["session_id"], format!("s{n}"));
        for base in &bases[1..] {
            assert_eq!(
                get(&format!("{base}/sessions/s{n}")).json(),
                detail,
                "{base}"
            );
        }
        let runs = get(&format!("{}/sessions/s{n}/runs", bases[2])).json();
        assert_eq!(runs.as_array().unwrap().len(), 1);
        assert_eq!(
            runs[0]["content"],
            format!("Story for 'gated story {n}'. Starring Default-Bot. The end.")
        );
        assert_eq!(runs[0]["run_id"], run_ids[n].as_str());
    }
}

#[test]
fn queued_runs_are_cancelled_through_another_server_or_followed_where_they_were_accepted() {
    let db = TestDb::create();
    crate::processes::queued_runs_are_cancelled_or_followed_wherever_they_run(
        &[("AGENTOS_DB", &db.url)],
        false,
    );
}

#[test]
fn a_stalled_server_does_not_overwrite_a_run_settled_meanwhile() {
    let db = TestDb::create();
    crate::processes::a_stalled_owner_does_not_overwrite_its_settled_run(&[(
        "AGENTOS_DB",
        &db.url,
    )]);
}

/// How many runs have each status, with the least content of each, straight from the
/// database.
fn statuses(url: &str) -> Vec<(String, i64, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .query(
                "SELECT status, COUNT(*), MIN(LEFT(run, 700)) FROM runs \
                 GROUP BY status ORDER BY status",
                &[],
            )
            .await
            .expect("count")
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    })
}

/// `(runs, distinct run ids, COMPLETED runs)` straight from the database.
fn count_runs(url: &str) -> (i64, i64, i64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT COUNT(*), COUNT(DISTINCT run_id), \
                 COUNT(*) FILTER (WHERE status = 'COMPLETED') FROM runs",
                &[],
            )
            .await
            .expect("count");
        (row.get(0), row.get(1), row.get(2))
    })
}

#[test]
fn a_database_that_cannot_be_opened_is_reported_with_the_server_s_reason() {
    let base = crate::util::postgres::admin_url();
    let missing = match base.rfind('/') {
        Some(at) => format!("{}/agentos_no_such_database", &base[..at]),
        None => panic!("AGENTOS_TEST_POSTGRES has no database part: {base}"),
    };
    let env = crate::util::TestEnv::new();
    let out = env.run(["--db", &missing, "sessions", "list"]);
    out.assert_code(1);
    out.assert_stderr_contains("database \"agentos_no_such_database\" does not exist");
}
