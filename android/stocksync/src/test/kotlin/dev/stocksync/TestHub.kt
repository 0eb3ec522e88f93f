package dev.stocksync

import org.junit.Assert.fail
import java.io.File
import java.util.concurrent.TimeUnit

/**
 * A real hub for the test: `stocksync hub --dev --bind 127.0.0.1:0 --data-dir DIR` as a child
 * process. Its URL and enrollment key come from `DIR/dev-credentials.json`, which the hub
 * writes once it listens. [close] stops it.
 */
class TestHub private constructor(
    private val process: Process,
    val dataDir: File,
    val baseUrl: String,
    val enrollmentKey: String,
    val organizationId: String,
) : AutoCloseable {

    companion object {
        /** The hub binary: `$STOCKSYNC_BIN`, else `target/debug/stocksync` in the repo. */
        fun binary(): File {
            val bin = System.getenv("STOCKSYNC_BIN")?.takeIf { it.isNotBlank() }?.let(::File)
                ?: File(repoRoot(), "target/debug/stocksync")
            if (!bin.canExecute()) {
                fail("no hub binary at $bin: build it (cargo build -p stocksync) or set STOCKSYNC_BIN")
            }
            return bin
        }

        /** The repository root: the first directory up from the working dir with bindings/SCENARIO.md. */
        fun repoRoot(): File {
            var dir: File? = File(System.getProperty("user.dir")).absoluteFile
            while (dir != null) {
                if (File(dir, "bindings/SCENARIO.md").isFile) return dir
                dir = dir.parentFile
            }
            fail("cannot find the repository root (bindings/SCENARIO.md) above ${System.getProperty("user.dir")}")
            error("unreachable")
        }

        /** Starts a hub on a free port with its data in [dataDir]; waits until it listens. */
        fun start(dataDir: File, timeoutMs: Long = 30_000): TestHub {
            dataDir.mkdirs()
            val log = File(dataDir, "hub.log")
            val process = ProcessBuilder(
                binary().path, "hub", "--dev", "--bind", "127.0.0.1:0", "--data-dir", dataDir.path,
            ).redirectErrorStream(true).redirectOutput(log).start()
            val credentials = File(dataDir, "dev-credentials.json")
            val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs)
            while (true) {
                // The file may be there before it is complete: read until base_url parses.
                val text = if (credentials.isFile) credentials.readText() else ""
                val baseUrl = field(text, "base_url")
                val key = field(text, "enrollment_key")
                if (!baseUrl.isNullOrEmpty() && !key.isNullOrEmpty()) {
                    return TestHub(process, dataDir, baseUrl, key, field(text, "organization_id") ?: "")
                }
                if (!process.isAlive) {
                    fail("the hub exited (${process.exitValue()}) before writing $credentials:\n${log.readText()}")
                }
                if (System.nanoTime() > deadline) {
                    process.destroyForcibly()
                    fail("no base_url in $credentials after $timeoutMs ms; hub log:\n${log.readText()}")
                }
                Thread.sleep(50)
            }
        }

        /** A string field of the tiny credentials JSON (no JSON library on the test classpath). */
        private fun field(json: String, name: String): String? =
            Regex("\"" + Regex.escape(name) + "\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)
    }

    /** Stops the hub (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
    override fun close() {
        if (!process.isAlive) return
        process.destroy()
        if (!process.waitFor(5, TimeUnit.SECONDS)) {
            process.destroyForcibly()
            process.waitFor(5, TimeUnit.SECONDS)
        }
    }
}
