
use builtin;
use str;

set edit:completion:arg-completer[agentos] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'agentos'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'agentos'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Run an agent once and stream its answer to stdout'
            cand continue 'Continue a run paused for a tool confirmation'
            cand serve 'Serve the AgentOS HTTP API'
            cand check 'Validate an agents file and print what it defines'
            cand agents 'List agents, teams and workflows, or show one'
            cand sessions 'List, show, rename or delete stored sessions'
            cand cancel 'Cancel a run, whichever process executes it'
            cand runs 'List the runs of every process sharing the store, or follow one as it goes'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agentos;run'= {
            cand -m 'The message to send'
            cand --message 'The message to send'
            cand -s 'Continue this session (created when it does not exist)'
            cand --session 'Continue this session (created when it does not exist)'
            cand -u 'User the run belongs to'
            cand --user 'User the run belongs to'
            cand --dependencies 'JSON object whose values fill {placeholders} in the instructions'
            cand --session-state 'JSON object: the session state (also fills {placeholders})'
            cand --metadata 'JSON object stored with the run'
            cand --output-schema 'JSON Schema the answer must follow (JSON text, or @FILE)'
            cand --model 'Use this model instead of the agent''s (`provider:model`, or `test`)'
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand --no-stream 'Ask the model for the whole answer at once instead of streaming it'
            cand --json 'Print the final run object as JSON (the API''s shape) instead of the text'
            cand --jsonl 'Print every event as one JSON object per line, as it happens'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;continue'= {
            cand --note 'Why; given to the model with a rejection'
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand --approve 'Let the paused tool calls run'
            cand --reject 'Refuse the paused tool calls; the model is told (with --note)'
            cand --json 'Print the final run object as JSON instead of the text'
            cand --jsonl 'Print every event as one JSON object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;serve'= {
            cand --host 'Address to listen on'
            cand --port 'Port to listen on (0 picks a free one; the real address is printed)'
            cand --security-key 'Bearer key required on every non-public path'
            cand --cors-origin 'Extra CORS origin allowed on top of AgentOS''s defaults (repeatable)'
            cand --max-runs 'Most runs executing at once; more get 429'
            cand --max-body-bytes 'Largest request body in bytes; larger ones get 413'
            cand --max-connections 'Most client connections open at once; more are answered 503 and closed'
            cand --body-timeout-secs 'Seconds a client has to send its whole request body; slower ones get 408'
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand --insecure 'Allow listening on a non-loopback address without a security key'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;check'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;agents'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand list 'One line per agent, team and workflow (the default)'
            cand show 'Everything about one agent, team or workflow, instructions and steps included'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agentos;agents;list'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;agents;show'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;agents;help'= {
            cand list 'One line per agent, team and workflow (the default)'
            cand show 'Everything about one agent, team or workflow, instructions and steps included'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agentos;agents;help;list'= {
        }
        &'agentos;agents;help;show'= {
        }
        &'agentos;agents;help;help'= {
        }
        &'agentos;sessions'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand list 'List sessions, newest first'
            cand show 'Print a session''s conversation'
            cand delete 'Delete a session and its runs'
            cand rename 'Give a session a name'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agentos;sessions;list'= {
            cand --agent 'Only sessions of this agent'
            cand -u 'Only sessions of this user'
            cand --user 'Only sessions of this user'
            cand -n 'How many to show'
            cand --limit 'How many to show'
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand --json 'Print JSON lines instead of a table'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;sessions;show'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand --json 'Print the stored runs as JSON instead'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;sessions;delete'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;sessions;rename'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;sessions;help'= {
            cand list 'List sessions, newest first'
            cand show 'Print a session''s conversation'
            cand delete 'Delete a session and its runs'
            cand rename 'Give a session a name'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agentos;sessions;help;list'= {
        }
        &'agentos;sessions;help;show'= {
        }
        &'agentos;sessions;help;delete'= {
        }
        &'agentos;sessions;help;rename'= {
        }
        &'agentos;sessions;help;help'= {
        }
        &'agentos;cancel'= {
            cand --wait-secs 'How long to wait for the run to stop (0: only ask)'
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;runs'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand list 'List runs, newest first, with the process executing each live one'
            cand follow 'Print a run''s answer (or events) as it goes, from any process; ends with the run'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agentos;runs;list'= {
            cand --status 'Only runs with this status (running, pending, completed, paused, cancelled, error); repeatable'
            cand -n 'How many to show'
            cand --limit 'How many to show'
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand --all 'Team members'' runs too (a workflow''s steps are kept inside its run)'
            cand --json 'Print a JSON array instead of a table'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;runs;follow'= {
            cand --after 'Start after this event index (as the API''s `last_event_index`); default: from the start'
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand --jsonl 'Print every event as one JSON line (with its `event_index`) instead of the answer'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;runs;help'= {
            cand list 'List runs, newest first, with the process executing each live one'
            cand follow 'Print a run''s answer (or events) as it goes, from any process; ends with the run'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agentos;runs;help;list'= {
        }
        &'agentos;runs;help;follow'= {
        }
        &'agentos;runs;help;help'= {
        }
        &'agentos;completions'= {
            cand --config 'Agents file to use'
            cand --db 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)'
            cand --db-pool 'PostgreSQL connections each process keeps for reads (writes have four of their own)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'agentos;help'= {
            cand run 'Run an agent once and stream its answer to stdout'
            cand continue 'Continue a run paused for a tool confirmation'
            cand serve 'Serve the AgentOS HTTP API'
            cand check 'Validate an agents file and print what it defines'
            cand agents 'List agents, teams and workflows, or show one'
            cand sessions 'List, show, rename or delete stored sessions'
            cand cancel 'Cancel a run, whichever process executes it'
            cand runs 'List the runs of every process sharing the store, or follow one as it goes'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'agentos;help;run'= {
        }
        &'agentos;help;continue'= {
        }
        &'agentos;help;serve'= {
        }
        &'agentos;help;check'= {
        }
        &'agentos;help;agents'= {
            cand list 'One line per agent, team and workflow (the default)'
            cand show 'Everything about one agent, team or workflow, instructions and steps included'
        }
        &'agentos;help;agents;list'= {
        }
        &'agentos;help;agents;show'= {
        }
        &'agentos;help;sessions'= {
            cand list 'List sessions, newest first'
            cand show 'Print a session''s conversation'
            cand delete 'Delete a session and its runs'
            cand rename 'Give a session a name'
        }
        &'agentos;help;sessions;list'= {
        }
        &'agentos;help;sessions;show'= {
        }
        &'agentos;help;sessions;delete'= {
        }
        &'agentos;help;sessions;rename'= {
        }
        &'agentos;help;cancel'= {
        }
        &'agentos;help;runs'= {
            cand list 'List runs, newest first, with the process executing each live one'
            cand follow 'Print a run''s answer (or events) as it goes, from any process; ends with the run'
        }
        &'agentos;help;runs;list'= {
        }
        &'agentos;help;runs;follow'= {
        }
        &'agentos;help;completions'= {
        }
        &'agentos;help;help'= {
        }
    ]
    $completions[$command]
}
