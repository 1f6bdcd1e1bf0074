"""What the benchmarks, the Lambda-fit tool and the end-to-end tests share, once each:

- `servers`: a real `movie-recs serve` as a child process (spawn, wait until ready, stop);
- `redis`: a private redis-server on a free port (never the machine's 6379);
- `recall`: the queries recall@10 is measured on (the measure itself is the service's);
- `stats`: percentiles; `memory`: a process's peak resident memory;
- `machine`: the commit and the machine a figure was measured on;
- `results`: a benchmark's table written into docs/benchmarks.md.

Signing and posting a webhook lives beside the signer, in `service.ingest.webhook_signer`
(the product's `send-webhook` uses it, and the service never imports bench).

Nothing here is imported by this file: `lambdafit.probe` imports `memory` into a fresh process
whose start-up it times.
"""
