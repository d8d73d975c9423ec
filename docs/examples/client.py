"""The Python client: Client() reads TRELLIS_URL and TRELLIS_TOKEN from the environment."""

from trellis_client import Client, Conflict  # AsyncClient: the same methods, awaited

SHOUT = {
    "name": "shout",
    "inputs": {
        "type": "object",
        "properties": {"name": {"type": "string", "default": "ada"}},
        "required": ["name"],
    },
    "dag": {
        "nodes": [
            {"id": "start", "handler": "input"},
            {
                "id": "loud",
                "handler": "output",
                "dependencies": ["start"],
                "config": {"value": "{{ start.output.data.name | upper }}!"},
            },
        ]
    },
}

with Client() as trellis:  # or Client("http://127.0.0.1:8000", token)
    trellis.push_workflow(SHOUT)  # or a Path to a YAML/JSON file, or a Python Workflow
    run = trellis.start_run("shout", {"name": "ada"})
    for event in trellis.follow(run.id):  # resumes after a dropped connection; ends with the run
        print(event.kind, event.node, event.data)
    print(trellis.get_run(run.id).result)  # ADA!
    try:
        trellis.pause_run(run.id)
    except Conflict as exc:  # 409: the run is COMPLETED
        print(exc.status, exc.current)
