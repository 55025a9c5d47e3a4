#!/usr/bin/env python3
"""Connects the official MCP Python SDK to task-mcp over stdio, as a user's client would, lists the
tools and calls each of them once (then the main errors), lists and gets the prompts, lists and reads
the resources, printing what comes back.

  pip install mcp
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/tasks python3 scripts/python-sdk-check.py [BINARY] [auto|legacy]

`auto` (the SDK's default) opens with `server/discover` (protocol 2026-07-28); `legacy` uses the
`initialize` handshake. Exits non-zero on the first surprise.
"""

import asyncio
import json
import os
import sys
import uuid

from mcp import Client, MCPError, StdioServerParameters

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/task-mcp"
MODE = sys.argv[2] if len(sys.argv) > 2 else "auto"


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


async def call(client, name, arguments, expect_error=False):
    result = await client.call_tool(name, arguments)
    text = " ".join(getattr(block, "text", "") for block in result.content)
    shown = json.dumps(arguments)[:70]
    if expect_error:
        check(result.is_error, f"{name}({shown}) should have failed: {text}")
        print(f"  {name}({shown}) -> error: {text[:150]}")
    else:
        check(not result.is_error, f"{name}({shown}) failed: {text}")
        check(result.structured_content is not None, f"{name} returned no structured content")
        print(f"  {name}({shown}) -> {json.dumps(result.structured_content)[:150]}")
    return result.structured_content


async def refused(call):
    try:
        await call
    except MCPError as error:
        return error
    return None


async def prompts_and_resources(client, key):
    prompts = (await client.list_prompts()).prompts
    names = sorted(p.name for p in prompts)
    print(f"prompts: {names}")
    check(names == ["next_task", "plan_work", "standup"], "the prompt list")
    for name, arguments in [
        ("next_task", {"repository": "org/sdk"}),
        ("plan_work", {"goal": "Check the SDK end to end", "repository": "org/sdk"}),
        ("standup", {"since": "1h"}),
    ]:
        result = await client.get_prompt(name, arguments)
        text = result.messages[0].content.text
        print(f"  prompt {name}({json.dumps(arguments)}) -> {text[:150]!r}")
    standup = (await client.get_prompt("standup")).messages[0].content.text
    check(key in standup, "the standup names the task changed")
    for name, arguments in [("retro", {}), ("standup", {"since": "a while"}), ("plan_work", {})]:
        error = await refused(client.get_prompt(name, arguments))
        check(error is not None and error.code == -32602, f"prompt {name}({arguments}) should be invalid params")
        print(f"  prompt {name}({json.dumps(arguments)}) -> error {error.code}: {error.message[:120]}")
    resources = (await client.list_resources()).resources
    print(f"resources: {[str(r.uri) for r in resources]}")
    check(f"task://{key}" in [str(r.uri) for r in resources], "the task assigned to me is listed")
    read = await client.read_resource(f"task://{key}")
    check(read.contents[0].text.startswith(f"# {key} "), "the task reads as Markdown")
    error = await refused(client.read_resource("task://NOPE-1"))
    # -32002 before protocol 2026-07-28, invalid params (-32602) since.
    check(error is not None and error.code in (-32002, -32602), "an unknown task is not found")


async def main():
    env = {"TASK_MCP_USER": os.environ.get("TASK_MCP_USER", "sdk-check@example.com"), "RUST_LOG": "warn"}
    for name in ("DATABASE_URL", "TASK_MCP_DATA_DIR", "REDIS_URL"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    server = StdioServerParameters(command=BINARY, env=env)
    async with Client(server, mode=MODE) as client:
        print(f"connected: protocol {client.protocol_version}, server {client.server_info}")
        print(f"instructions: {client.instructions}")
        tools = (await client.list_tools()).tools
        names = sorted(t.name for t in tools)
        print(f"tools: {names}")
        check(
            names
            == sorted(
                [
                    "get_tasks",
                    "get_task",
                    "create_task",
                    "update_task_status",
                    "update_task",
                    "add_task_comment",
                    "delete_task",
                    "claim_task",
                    "release_task",
                ]
            ),
            "the tool list",
        )
        check(all(t.output_schema for t in tools), "every tool has an outputSchema")

        key = f"sdk-check-{uuid.uuid4()}"
        fields = {"title": "Checked by the Python SDK", "assignee_id": "me", "repository": "org/sdk", "idempotency_key": key}
        task = await call(client, "create_task", fields)
        again = await call(client, "create_task", fields)
        check(again["id"] == task["id"], "idempotent create")
        task_id = task["id"]
        await call(client, "get_tasks", {"assignee": "me", "repository": "org/sdk", "limit": 10})
        await call(client, "get_task", {"task_id": task_id})
        started = await call(
            client, "update_task_status", {"task_id": task_id, "new_status": "in_progress", "expected_version": 1}
        )
        await call(client, "update_task", {"task_id": task_id, "priority": "urgent", "expected_version": started["version"]})
        await call(client, "add_task_comment", {"task_id": task_id, "comment": "Works from Python."})
        detail = await call(client, "get_task", {"task_id": task_id})
        check(len(detail["history"]) >= 2 and len(detail["comments"]) == 1, "history and comments")
        await call(client, "update_task_status", {"task_id": task_id, "new_status": "done"}, expect_error=True)
        await call(client, "update_task", {"task_id": task_id, "title": "x", "expected_version": 1}, expect_error=True)
        await call(client, "get_task", {"task_id": "not-a-uuid"}, expect_error=True)
        await prompts_and_resources(client, task["key"])
        await call(client, "delete_task", {"task_id": task_id, "reason": "check done"})
        await call(client, "get_task", {"task_id": task_id}, expect_error=True)
    print("OK: the Python SDK listed the tools and called each of them, got the prompts, read the resources")


asyncio.run(main())
