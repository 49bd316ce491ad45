
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'agentos' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'agentos'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'agentos' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run an agent once and stream its answer to stdout')
            [CompletionResult]::new('continue', 'continue', [CompletionResultType]::ParameterValue, 'Continue a run paused for a tool confirmation')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the AgentOS HTTP API')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate an agents file and print what it defines')
            [CompletionResult]::new('agents', 'agents', [CompletionResultType]::ParameterValue, 'List agents, teams and workflows, or show one')
            [CompletionResult]::new('sessions', 'sessions', [CompletionResultType]::ParameterValue, 'List, show, rename or delete stored sessions')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'Cancel a run, whichever process executes it')
            [CompletionResult]::new('runs', 'runs', [CompletionResultType]::ParameterValue, 'List the runs of every process sharing the store, or follow one as it goes')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agentos;run' {
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'The message to send')
            [CompletionResult]::new('--message', '--message', [CompletionResultType]::ParameterName, 'The message to send')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Continue this session (created when it does not exist)')
            [CompletionResult]::new('--session', '--session', [CompletionResultType]::ParameterName, 'Continue this session (created when it does not exist)')
            [CompletionResult]::new('-u', '-u', [CompletionResultType]::ParameterName, 'User the run belongs to')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'User the run belongs to')
            [CompletionResult]::new('--dependencies', '--dependencies', [CompletionResultType]::ParameterName, 'JSON object whose values fill {placeholders} in the instructions')
            [CompletionResult]::new('--session-state', '--session-state', [CompletionResultType]::ParameterName, 'JSON object: the session state (also fills {placeholders})')
            [CompletionResult]::new('--metadata', '--metadata', [CompletionResultType]::ParameterName, 'JSON object stored with the run')
            [CompletionResult]::new('--output-schema', '--output-schema', [CompletionResultType]::ParameterName, 'JSON Schema the answer must follow (JSON text, or @FILE)')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Use this model instead of the agent''s (`provider:model`, or `test`)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('--no-stream', '--no-stream', [CompletionResultType]::ParameterName, 'Ask the model for the whole answer at once instead of streaming it')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the final run object as JSON (the API''s shape) instead of the text')
            [CompletionResult]::new('--jsonl', '--jsonl', [CompletionResultType]::ParameterName, 'Print every event as one JSON object per line, as it happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;continue' {
            [CompletionResult]::new('--note', '--note', [CompletionResultType]::ParameterName, 'Why; given to the model with a rejection')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('--approve', '--approve', [CompletionResultType]::ParameterName, 'Let the paused tool calls run')
            [CompletionResult]::new('--reject', '--reject', [CompletionResultType]::ParameterName, 'Refuse the paused tool calls; the model is told (with --note)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the final run object as JSON instead of the text')
            [CompletionResult]::new('--jsonl', '--jsonl', [CompletionResultType]::ParameterName, 'Print every event as one JSON object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;serve' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Address to listen on')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port to listen on (0 picks a free one; the real address is printed)')
            [CompletionResult]::new('--security-key', '--security-key', [CompletionResultType]::ParameterName, 'Bearer key required on every non-public path')
            [CompletionResult]::new('--cors-origin', '--cors-origin', [CompletionResultType]::ParameterName, 'Extra CORS origin allowed on top of AgentOS''s defaults (repeatable)')
            [CompletionResult]::new('--max-runs', '--max-runs', [CompletionResultType]::ParameterName, 'Most runs executing at once; more get 429')
            [CompletionResult]::new('--max-body-bytes', '--max-body-bytes', [CompletionResultType]::ParameterName, 'Largest request body in bytes; larger ones get 413')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Most client connections open at once; more are answered 503 and closed')
            [CompletionResult]::new('--body-timeout-secs', '--body-timeout-secs', [CompletionResultType]::ParameterName, 'Seconds a client has to send its whole request body; slower ones get 408')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Allow listening on a non-loopback address without a security key')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;check' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;agents' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'One line per agent, team and workflow (the default)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Everything about one agent, team or workflow, instructions and steps included')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agentos;agents;list' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;agents;show' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;agents;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'One line per agent, team and workflow (the default)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Everything about one agent, team or workflow, instructions and steps included')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agentos;agents;help;list' {
            break
        }
        'agentos;agents;help;show' {
            break
        }
        'agentos;agents;help;help' {
            break
        }
        'agentos;sessions' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List sessions, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print a session''s conversation')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a session and its runs')
            [CompletionResult]::new('rename', 'rename', [CompletionResultType]::ParameterValue, 'Give a session a name')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agentos;sessions;list' {
            [CompletionResult]::new('--agent', '--agent', [CompletionResultType]::ParameterName, 'Only sessions of this agent')
            [CompletionResult]::new('-u', '-u', [CompletionResultType]::ParameterName, 'Only sessions of this user')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Only sessions of this user')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'How many to show')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'How many to show')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON lines instead of a table')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;sessions;show' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the stored runs as JSON instead')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;sessions;delete' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;sessions;rename' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;sessions;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List sessions, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print a session''s conversation')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a session and its runs')
            [CompletionResult]::new('rename', 'rename', [CompletionResultType]::ParameterValue, 'Give a session a name')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agentos;sessions;help;list' {
            break
        }
        'agentos;sessions;help;show' {
            break
        }
        'agentos;sessions;help;delete' {
            break
        }
        'agentos;sessions;help;rename' {
            break
        }
        'agentos;sessions;help;help' {
            break
        }
        'agentos;cancel' {
            [CompletionResult]::new('--wait-secs', '--wait-secs', [CompletionResultType]::ParameterName, 'How long to wait for the run to stop (0: only ask)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;runs' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List runs, newest first, with the process executing each live one')
            [CompletionResult]::new('follow', 'follow', [CompletionResultType]::ParameterValue, 'Print a run''s answer (or events) as it goes, from any process; ends with the run')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agentos;runs;list' {
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only runs with this status (running, pending, completed, paused, cancelled, error); repeatable')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'How many to show')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'How many to show')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Team members'' runs too (a workflow''s steps are kept inside its run)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON array instead of a table')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;runs;follow' {
            [CompletionResult]::new('--after', '--after', [CompletionResultType]::ParameterName, 'Start after this event index (as the API''s `last_event_index`); default: from the start')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('--jsonl', '--jsonl', [CompletionResultType]::ParameterName, 'Print every event as one JSON line (with its `event_index`) instead of the answer')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;runs;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List runs, newest first, with the process executing each live one')
            [CompletionResult]::new('follow', 'follow', [CompletionResultType]::ParameterValue, 'Print a run''s answer (or events) as it goes, from any process; ends with the run')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agentos;runs;help;list' {
            break
        }
        'agentos;runs;help;follow' {
            break
        }
        'agentos;runs;help;help' {
            break
        }
        'agentos;completions' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Agents file to use')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where sessions and runs are kept: a SQLite file, or a PostgreSQL URL (`postgres://user@host:5432/db`, `?sslmode=require` for TLS)')
            [CompletionResult]::new('--db-pool', '--db-pool', [CompletionResultType]::ParameterName, 'PostgreSQL connections each process keeps for reads (writes have four of their own)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'agentos;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run an agent once and stream its answer to stdout')
            [CompletionResult]::new('continue', 'continue', [CompletionResultType]::ParameterValue, 'Continue a run paused for a tool confirmation')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the AgentOS HTTP API')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate an agents file and print what it defines')
            [CompletionResult]::new('agents', 'agents', [CompletionResultType]::ParameterValue, 'List agents, teams and workflows, or show one')
            [CompletionResult]::new('sessions', 'sessions', [CompletionResultType]::ParameterValue, 'List, show, rename or delete stored sessions')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'Cancel a run, whichever process executes it')
            [CompletionResult]::new('runs', 'runs', [CompletionResultType]::ParameterValue, 'List the runs of every process sharing the store, or follow one as it goes')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'agentos;help;run' {
            break
        }
        'agentos;help;continue' {
            break
        }
        'agentos;help;serve' {
            break
        }
        'agentos;help;check' {
            break
        }
        'agentos;help;agents' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'One line per agent, team and workflow (the default)')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Everything about one agent, team or workflow, instructions and steps included')
            break
        }
        'agentos;help;agents;list' {
            break
        }
        'agentos;help;agents;show' {
            break
        }
        'agentos;help;sessions' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List sessions, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print a session''s conversation')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a session and its runs')
            [CompletionResult]::new('rename', 'rename', [CompletionResultType]::ParameterValue, 'Give a session a name')
            break
        }
        'agentos;help;sessions;list' {
            break
        }
        'agentos;help;sessions;show' {
            break
        }
        'agentos;help;sessions;delete' {
            break
        }
        'agentos;help;sessions;rename' {
            break
        }
        'agentos;help;cancel' {
            break
        }
        'agentos;help;runs' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List runs, newest first, with the process executing each live one')
            [CompletionResult]::new('follow', 'follow', [CompletionResultType]::ParameterValue, 'Print a run''s answer (or events) as it goes, from any process; ends with the run')
            break
        }
        'agentos;help;runs;list' {
            break
        }
        'agentos;help;runs;follow' {
            break
        }
        'agentos;help;completions' {
            break
        }
        'agentos;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
