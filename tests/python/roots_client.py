"""The official MCP Python SDK as a client that announces one root folder: connects to task-mcp over
stdio (the `initialize` handshake), creates a task without a repository and lists tasks, then prints
both results as one JSON object on stdout for the Rust test that runs it.

  roots_client.py BINARY CWD ROOT_FOLDER   (DATABASE_URL, TASK_MCP_USER, TASK_MCP_DATA_DIR from the environment)
"""

import asyncio
import json
import os
import sys
from pathlib import Path

import mcp.types as types
from mcp import Client, StdioServerParameters


async def main():
    binary, cwd, root = sys.argv[1], sys.argv[2], sys.argv[3]

    async def list_roots(context):
        return types.ListRootsResult(roots=[types.Root(uri=Path(root).as_uri(), name="workspace")])

    env = {name: os.environ[name] for name in ("DATABASE_URL", "TASK_MCP_USER", "TASK_MCP_DATA_DIR", "PATH")}
    env["RUST_LOG"] = "warn"
    server = StdioServerParameters(command=binary, cwd=cwd, env=env)
    async with Client(server, mode="legacy", list_roots_callback=list_roots) as client:
        created = await client.call_tool("create_task", {"title": "filed by the Python SDK"})
        listed = await client.call_tool("get_tasks", {})
        print(
            json.dumps(
                {
                    "instructions": client.instructions,
                    "created": created.structured_content,
                    "listed": listed.structured_content,
                }
            )
        )


asyncio.run(main())
