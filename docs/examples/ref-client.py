"""Push a workflow, start a run, follow its events and read its result with the client.

Client() reads TRELLIS_URL and TRELLIS_TOKEN (or a saved profile).
"""

from pathlib import Path

from trellis_client import Client

spec = Path(__file__).with_name("ref-greet.yaml")

with Client() as trellis:
    trellis.push_workflow(spec)
    run = trellis.start_run("ref-greet", {"name": "grace"})
    for event in trellis.follow(run.id):
        print(event.kind, event.node, event.data)
    finished = trellis.get_run(run.id)
    print(finished.status, finished.result)
    assert finished.status == "COMPLETED"
    assert finished.result == "Hello, GRACE!"
