"""The official MCP Python SDK reading task-mcp's prompts and resources over stdio: files two tasks,
lists and gets every prompt (and one that does not exist, and one with a bad argument), lists the
resources and reads one, then prints what came back as one JSON object on stdout for the Rust test
that runs it.

  prompts_client.py BINARY auto|legacy   (DATABASE_URL, TASK_MCP_USER, TASK_MCP_DATA_DIR from the environment)
"""

import asyncio
import json
import os
import sys

from mcp import Client, MCPError, StdioServerParameters


def text_of(result):
    return [getattr(m.content, "text", None) for m in result.messages]


async def refused(call):
    try:
        await call
    except MCPError as error:
        return {"code": error.code, "message": error.message, "data": error.data}
    return None


async def main():
    binary, mode = sys.argv[1], sys.argv[2]
    env = {name: os.environ[name] for name in ("DATABASE_URL", "TASK_MCP_USER", "TASK_MCP_DATA_DIR", "PATH")}
    env["RUST_LOG"] = "warn"
    server = StdioServerParameters(command=binary, cwd=os.environ["TASK_MCP_DATA_DIR"], env=env)
    async with Client(server, mode=mode) as client:
        mine = await client.call_tool(
            "create_task", {"title": "Read by the SDK", "repository": "sdk", "assignee_id": "me", "priority": "high"}
        )
        key = mine.structured_content["key"]
        await client.call_tool("add_task_comment", {"task_id": key, "comment": "started from Python"})
        prompts = (await client.list_prompts()).prompts
        resources = (await client.list_resources()).resources
        read = await client.read_resource(f"task://{key}")
        print(
            json.dumps(
                {
                    "key": key,
                    "prompts": [
                        {
                            "name": p.name,
                            "description": p.description,
                            "arguments": [{"name": a.name, "required": a.required} for a in p.arguments or []],
                        }
                        for p in prompts
                    ],
                    "next_task": text_of(await client.get_prompt("next_task", {"repository": "sdk"})),
                    "plan_work": text_of(await client.get_prompt("plan_work", {"goal": "Port the CLI to Python"})),
                    "standup": text_of(await client.get_prompt("standup", {"since": "2h"})),
                    "standup_default": text_of(await client.get_prompt("standup")),
                    "unknown_prompt": await refused(client.get_prompt("retro")),
                    "bad_since": await refused(client.get_prompt("standup", {"since": "a while"})),
                    "missing_goal": await refused(client.get_prompt("plan_work", {})),
                    "resources": [{"uri": str(r.uri), "name": r.name, "mime": r.mime_type} for r in resources],
                    "read": [{"uri": str(c.uri), "mime": c.mime_type, "text": getattr(c, "text", None)} for c in read.contents],
                    "missing_resource": await refused(client.read_resource("task://NOPE-1")),
                }
            )
        )


asyncio.run(main())
