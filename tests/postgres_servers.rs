//! Several `agentos serve` processes on one PostgreSQL database behave as one server: a
//! run started on one is listed, polled, cancelled and followed through another; a
//! server killed mid-run has its runs taken over; background runs a full server accepted
//! are run by another; hundreds of concurrent runs spread over three servers are stored
//! once each.
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
    let mut a = cluster(&db, &[]);
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
    std::thread::sleep(Duration::from_millis(400));
    a.terminate_hard();
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
}

#[test]
fn a_background_run_a_full_server_accepted_runs_on_another() {
    let db = TestDb::create();
    let a = cluster(&db, &["--max-runs", "1"]);
    // A is busy with a slow run.
    let mut busy = Stream::open(
        &a.url("/agents/story-writer/runs"),
        &[
            ("message", "slow story"),
            ("stream", "true"),
            ("session_id", "busy"),
        ],
    );
    busy.until(Duration::from_secs(10), |n, _| n == "RunStarted");
    // A foreground run is refused, a background one accepted.
    let refused = post_form(
        &a.url("/agents/story-writer/runs"),
        &[("message", "hi"), ("stream", "false")],
    );
    assert_eq!(refused.status, 429);
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
    let run_id = accepted.json()["run_id"].as_str().unwrap().to_string();
    let poll = a.url(&format!(
        "/agents/story-writer/runs/{run_id}?session_id=queued"
    ));
    assert_eq!(get(&poll).json()["status"], "PENDING");
    // B, with room, takes it up.
    let _b = peer(&a, &db);
    let run = wait_stored(&poll, Duration::from_secs(15), |r| {
        r["status"] == "COMPLETED"
    });
    assert_eq!(
        run["content"],
        "Story for 'queued story'. Starring Default-Bot. The end."
    );
    // A's one place was still taken: the queued run ran on B.
    let busy_runs = get(&a.url("/sessions/busy/runs")).json();
    assert_eq!(busy_runs[0]["status"], "RUNNING", "{busy_runs}");
    drop(busy);
}

#[test]
fn concurrent_runs_spread_over_three_servers_are_stored_once() {
    let db = TestDb::create();
    let a = cluster(&db, &[]);
    let b = peer(&a, &db);
    let c = peer(&a, &db);
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];
    let threads: Vec<_> = (0..50)
        .map(|t| {
            let bases = bases.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..10 {
                    let n = t * 10 + i;
                    let base = &bases[n % 3];
                    let stream = if n % 2 == 0 { "true" } else { "false" };
                    let session = format!("s{n}");
                    let answer = post_form(
                        &format!("{base}/agents/story-writer/runs"),
                        &[
                            ("message", &format!("story {n}")),
                            ("stream", stream),
                            ("session_id", &session),
                        ],
                    );
                    assert_eq!(answer.status, 200, "{}", answer.body);
                    ids.push(session);
                }
                ids
            })
        })
        .collect();
    let sessions: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect();
    assert_eq!(sessions.len(), 500);
    // Every server gives the same answers.
    for base in &bases {
        let page = get(&format!("{base}/sessions?limit=1000")).json();
        assert_eq!(page["meta"]["total_count"], 500, "{base}");
        let one = get(&format!("{base}/sessions/s123/runs")).json();
        assert_eq!(one.as_array().unwrap().len(), 1);
        assert_eq!(one[0]["status"], "COMPLETED");
    }
    let counts = count_runs(&db.url);
    assert_eq!(
        counts,
        (500, 500, 500),
        "(runs, distinct run ids, completed)"
    );
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
