"""One fresh interpreter's life, for test_exit.py: open a device database, sync, exit.

    python exit_child.py enroll DB HUB_URL ENROLLMENT_KEY   enroll DB with the hub, then exit
    python exit_child.py sync DB                             asyncio.run(node.sync_now()), exit
    python exit_child.py stop DB                             the same, then asyncio.run(node.stop())
    python exit_child.py background DB                       a listener, sync, start(), a local
                                                             write (a push in flight), exit: no stop()

A plain script on purpose: the node stays alive (a global) until the interpreter exits, as in
a user's small script. (Dropping it earlier closes the database first, which happens to give
the library's threads time and hides the crash this test is about.) Prints `synced` when it
reached the end. The package comes from PYTHONPATH (the test sets it to bindings/python).
"""

from __future__ import annotations

import asyncio
import os
import sys

import stocksync


class Count(stocksync.SyncListener):
    def __init__(self) -> None:
        self.events = 0

    def on_event(self, event) -> None:
        self.events += 1


mode, db, *rest = sys.argv[1:]
node = stocksync.SyncNode.open(db)
if mode == "enroll":
    hub_url, key = rest
    asyncio.run(node.enroll(hub_url, key, stocksync.DeviceRole.HANDHELD, "exit test"))
    print("enrolled")
    sys.exit(0)
if mode == "background":
    listener = Count()
    handle = node.add_listener(listener)  # kept: dropping it stops delivery
asyncio.run(node.sync_now())
if mode == "stop":
    asyncio.run(node.stop())
elif mode == "background":
    node.start()
    node.add_location(f"X-{os.getpid()}", "a write background sync pushes")
elif mode != "sync":
    sys.exit(f"unknown mode {mode}")
print("synced")
