# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_agentos_global_optspecs
    string join \n config= db= db-pool= h/help V/version
end

function __fish_agentos_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_agentos_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_agentos_using_subcommand
    set -l cmd (__fish_agentos_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c agentos -n "__fish_agentos_needs_command" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_needs_command" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_needs_command" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_needs_command" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_needs_command" -s V -l version -d 'Print version'
complete -c agentos -n "__fish_agentos_needs_command" -f -a "run" -d 'Run an agent once and stream its answer to stdout'
complete -c agentos -n "__fish_agentos_needs_command" -f -a "continue" -d 'Continue a run paused for a tool confirmation'
complete -c agentos -n "__fish_agentos_needs_command" -f -a "serve" -d 'Serve the AgentOS HTTP API'
complete -c agentos -n "__fish_agentos_needs_command" -f -a "check" -d 'Validate an agents file and print what it defines'
complete -c agentos -n "__fish_agentos_needs_command" -f -a "agents" -d 'List agents, teams and workflows, or show one'
complete -c agentos -n "__fish_agentos_needs_command" -f -a "sessions" -d 'List, show, rename or delete stored sessions'
complete -c agentos -n "__fish_agentos_needs_command" -f -a "cancel" -d 'Cancel a run, whichever process executes it'
complete -c agentos -n "__fish_agentos_needs_command" -f -a "runs" -d 'List the runs of every process sharing the store, or follow one as it goes'
complete -c agentos -n "__fish_agentos_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c agentos -n "__fish_agentos_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agentos -n "__fish_agentos_using_subcommand run" -s m -l message -d 'The message to send' -r
complete -c agentos -n "__fish_agentos_using_subcommand run" -s s -l session -d 'Continue this session (created when it does not exist)' -r
complete -c agentos -n "__fish_agentos_using_subcommand run" -s u -l user -d 'User the run belongs to' -r
complete -c agentos -n "__fish_agentos_using_subcommand run" -l dependencies -d 'JSON object whose values fill {placeholders} in the instructions' -r
complete -c agentos -n "__fish_agentos_using_subcommand run" -l session-state -d 'JSON object: the session state (also fills {placeholders})' -r
complete -c agentos -n "__fish_agentos_using_subcommand run" -l metadata -d 'JSON object stored with the run' -r
complete -c agentos -n "__fish_agentos_using_subcommand run" -l output-schema -d 'JSON Schema the answer must follow (JSON text, or @FILE)' -r
complete -c agentos -n "__fish_agentos_using_subcommand run" -l model -d 'Use this model instead of the agent\'s (`provider:model`, or `test`)' -r
complete -c agentos -n "__fish_agentos_using_subcommand run" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand run" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand run" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand run" -l no-stream -d 'Ask the model for the whole answer at once instead of streaming it'
complete -c agentos -n "__fish_agentos_using_subcommand run" -l json -d 'Print the final run object as JSON (the API\'s shape) instead of the text'
complete -c agentos -n "__fish_agentos_using_subcommand run" -l jsonl -d 'Print every event as one JSON object per line, as it happens'
complete -c agentos -n "__fish_agentos_using_subcommand run" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand continue" -l note -d 'Why; given to the model with a rejection' -r
complete -c agentos -n "__fish_agentos_using_subcommand continue" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand continue" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand continue" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand continue" -l approve -d 'Let the paused tool calls run'
complete -c agentos -n "__fish_agentos_using_subcommand continue" -l reject -d 'Refuse the paused tool calls; the model is told (with --note)'
complete -c agentos -n "__fish_agentos_using_subcommand continue" -l json -d 'Print the final run object as JSON instead of the text'
complete -c agentos -n "__fish_agentos_using_subcommand continue" -l jsonl -d 'Print every event as one JSON object per line'
complete -c agentos -n "__fish_agentos_using_subcommand continue" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l host -d 'Address to listen on' -r
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l port -d 'Port to listen on (0 picks a free one; the real address is printed)' -r
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l security-key -d 'Bearer key required on every non-public path' -r
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l cors-origin -d 'Extra CORS origin allowed on top of AgentOS\'s defaults (repeatable)' -r
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l max-runs -d 'Most runs executing at once; more get 429' -r
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l max-body-bytes -d 'Largest request body in bytes; larger ones get 413' -r
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l max-connections -d 'Most client connections open at once; more are answered 503 and closed' -r
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l body-timeout-secs -d 'Seconds a client has to send its whole request body; slower ones get 408' -r
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand serve" -l insecure -d 'Allow listening on a non-loopback address without a security key'
complete -c agentos -n "__fish_agentos_using_subcommand serve" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand check" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand check" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand check" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand check" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand agents; and not __fish_seen_subcommand_from list show help" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand agents; and not __fish_seen_subcommand_from list show help" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand agents; and not __fish_seen_subcommand_from list show help" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand agents; and not __fish_seen_subcommand_from list show help" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand agents; and not __fish_seen_subcommand_from list show help" -f -a "list" -d 'One line per agent, team and workflow (the default)'
complete -c agentos -n "__fish_agentos_using_subcommand agents; and not __fish_seen_subcommand_from list show help" -f -a "show" -d 'Everything about one agent, team or workflow, instructions and steps included'
complete -c agentos -n "__fish_agentos_using_subcommand agents; and not __fish_seen_subcommand_from list show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from list" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from list" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from list" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from show" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from show" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from show" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "list" -d 'One line per agent, team and workflow (the default)'
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "show" -d 'Everything about one agent, team or workflow, instructions and steps included'
complete -c agentos -n "__fish_agentos_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and not __fish_seen_subcommand_from list show delete rename help" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and not __fish_seen_subcommand_from list show delete rename help" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and not __fish_seen_subcommand_from list show delete rename help" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and not __fish_seen_subcommand_from list show delete rename help" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and not __fish_seen_subcommand_from list show delete rename help" -f -a "list" -d 'List sessions, newest first'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and not __fish_seen_subcommand_from list show delete rename help" -f -a "show" -d 'Print a session\'s conversation'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and not __fish_seen_subcommand_from list show delete rename help" -f -a "delete" -d 'Delete a session and its runs'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and not __fish_seen_subcommand_from list show delete rename help" -f -a "rename" -d 'Give a session a name'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and not __fish_seen_subcommand_from list show delete rename help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from list" -l agent -d 'Only sessions of this agent' -r
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from list" -s u -l user -d 'Only sessions of this user' -r
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from list" -s n -l limit -d 'How many to show' -r
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from list" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from list" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from list" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from list" -l json -d 'Print JSON lines instead of a table'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from show" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from show" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from show" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from show" -l json -d 'Print the stored runs as JSON instead'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from delete" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from delete" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from delete" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from rename" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from rename" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from rename" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from rename" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "list" -d 'List sessions, newest first'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print a session\'s conversation'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a session and its runs'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "rename" -d 'Give a session a name'
complete -c agentos -n "__fish_agentos_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agentos -n "__fish_agentos_using_subcommand cancel" -l wait-secs -d 'How long to wait for the run to stop (0: only ask)' -r
complete -c agentos -n "__fish_agentos_using_subcommand cancel" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand cancel" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand cancel" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand cancel" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and not __fish_seen_subcommand_from list follow help" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand runs; and not __fish_seen_subcommand_from list follow help" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand runs; and not __fish_seen_subcommand_from list follow help" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand runs; and not __fish_seen_subcommand_from list follow help" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and not __fish_seen_subcommand_from list follow help" -f -a "list" -d 'List runs, newest first, with the process executing each live one'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and not __fish_seen_subcommand_from list follow help" -f -a "follow" -d 'Print a run\'s answer (or events) as it goes, from any process; ends with the run'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and not __fish_seen_subcommand_from list follow help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from list" -l status -d 'Only runs with this status (running, pending, completed, paused, cancelled, error); repeatable' -r
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from list" -s n -l limit -d 'How many to show' -r
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from list" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from list" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from list" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from list" -l all -d 'Team members\' runs too (a workflow\'s steps are kept inside its run)'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from list" -l json -d 'Print a JSON array instead of a table'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from follow" -l after -d 'Start after this event index (as the API\'s `last_event_index`); default: from the start' -r
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from follow" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from follow" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from follow" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from follow" -l jsonl -d 'Print every event as one JSON line (with its `event_index`) instead of the answer'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from follow" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "list" -d 'List runs, newest first, with the process executing each live one'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "follow" -d 'Print a run\'s answer (or events) as it goes, from any process; ends with the run'
complete -c agentos -n "__fish_agentos_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agentos -n "__fish_agentos_using_subcommand completions" -l config -d 'Agents file to use' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand completions" -l db -d 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)' -r -F
complete -c agentos -n "__fish_agentos_using_subcommand completions" -l db-pool -d 'PostgreSQL connections each process keeps for reads (writes have four of their own)' -r
complete -c agentos -n "__fish_agentos_using_subcommand completions" -s h -l help -d 'Print help'
complete -c agentos -n "__fish_agentos_using_subcommand help; and not __fish_seen_subcommand_from run continue serve check agents sessions cancel runs completions help" -f -a "run" -d 'Run an agent once and stream its answer to stdout'
complete -c agentos -n "__fish_agentos_using_subcommand help; and not __fish_seen_subcommand_from run continue serve check agents sessions cancel runs completions help" -f -a "continue" -d 'Continue a run paused for a tool confirmation'
complete -c agentos -n "__fish_agentos_using_subcommand help; and not __fish_seen_subcommand_from run continue serve check agents sessions cancel runs completions help" -f -a "serve" -d 'Serve the AgentOS HTTP API'
complete -c agentos -n "__fish_agentos_using_subcommand help; and not __fish_seen_subcommand_from run continue serve check agents sessions cancel runs completions help" -f -a "check" -d 'Validate an agents file and print what it defines'
complete -c agentos -n "__fish_agentos_using_subcommand help; and not __fish_seen_subcommand_from run continue serve check agents sessions cancel runs completions help" -f -a "agents" -d 'List agents, teams and workflows, or show one'
complete -c agentos -n "__fish_agentos_using_subcommand help; and not __fish_seen_subcommand_from run continue serve check agents sessions cancel runs completions help" -f -a "sessions" -d 'List, show, rename or delete stored sessions'
complete -c agentos -n "__fish_agentos_using_subcommand help; and not __fish_seen_subcommand_from run continue serve check agents sessions cancel runs completions help" -f -a "cancel" -d 'Cancel a run, whichever process executes it'
complete -c agentos -n "__fish_agentos_using_subcommand help; and not __fish_seen_subcommand_from run continue serve check agents sessions cancel runs completions help" -f -a "runs" -d 'List the runs of every process sharing the store, or follow one as it goes'
complete -c agentos -n "__fish_agentos_using_subcommand help; and not __fish_seen_subcommand_from run continue serve check agents sessions cancel runs completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c agentos -n "__fish_agentos_using_subcommand help; and not __fish_seen_subcommand_from run continue serve check agents sessions cancel runs completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c agentos -n "__fish_agentos_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "list" -d 'One line per agent, team and workflow (the default)'
complete -c agentos -n "__fish_agentos_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "show" -d 'Everything about one agent, team or workflow, instructions and steps included'
complete -c agentos -n "__fish_agentos_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "list" -d 'List sessions, newest first'
complete -c agentos -n "__fish_agentos_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "show" -d 'Print a session\'s conversation'
complete -c agentos -n "__fish_agentos_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "delete" -d 'Delete a session and its runs'
complete -c agentos -n "__fish_agentos_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "rename" -d 'Give a session a name'
complete -c agentos -n "__fish_agentos_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "list" -d 'List runs, newest first, with the process executing each live one'
complete -c agentos -n "__fish_agentos_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "follow" -d 'Print a run\'s answer (or events) as it goes, from any process; ends with the run'
