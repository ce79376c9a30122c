# SPDX-License-Identifier: BSD-2-Clause
"""Opens N idle keep-alive connections to HOST:PORT for the memory test.

usage: idle_conns.py HOST PORT N
Each connection sends one GET / and reads its response, then stays open and
silent. Prints "ready OPEN FAILED" once all are settled, then holds them until
standard input closes. The caller needs `ulimit -n` above N.
"""
import asyncio
import sys

CONNECT_CONCURRENCY = 256


async def one(host, port, sem, held):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
            writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await asyncio.wait_for(reader.readexactly(length), 10)
            if not head.startswith(b"HTTP/1.1 200"):
                raise ValueError(head[:40])
            held.append(writer)
            return True
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            return False


async def main(host, port, n):
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    held = []
    results = await asyncio.gather(*(one(host, port, sem, held) for _ in range(n)))
    print("ready %d %d" % (len(held), results.count(False)), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for w in held:
        w.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
