import Dispatch
import Glibc
import HDF5
import Synchronization
import TestSupport
import Testing

@testable import MedSegData

/// `HDF5Vetting` with a shell script standing in for `medsegd vet` (the same protocol: a path a
/// line in, `ok` out): only what a child finished saying is remembered, and no check waits for
/// another file's.
@Suite("HDF5 vetting: verdicts, not accidents, are remembered; checks run side by side")
struct HDF5VettingTests {
    let folder = TemporaryDirectory("medsegd-vetting")

    /// Logs each path asked to `asked.log`; dies on a path containing `crash`; for a file with
    /// `<file>.hold` beside it, marks `<file>.started` and answers only once the hold is removed.
    static let script = """
        #!/bin/sh
        log="$(dirname "$0")/asked.log"
        while IFS= read -r path; do
          echo "$path" >> "$log"
          case "$path" in *crash*) exit 1;; esac
          if [ -e "$path.hold" ]; then
            : > "$path.started"
            while [ -e "$path.hold" ]; do sleep 0.02; done
          fi
          echo ok
        done
        """

    /// Where the stand-in child lives (written by `writeChild`).
    var child: String { folder.path + "/vet" }

    func writeChild() {
        chmod(folder.write("vet", Self.script), 0o755)
    }

    /// A real HDF5 file, so that a check that passes ends in an open that succeeds.
    func scanFile(_ name: String) throws -> String {
        let path = folder.file(name)
        try Fixtures.writeVolume(into: HDF5File.create(path), shape: [2, 2, 2], channels: 1)
        return path
    }

    func asked(_ path: String) -> Int {
        let log = (try? FileSystem.readFile(folder.path + "/asked.log")) ?? []
        return String(decoding: log, as: UTF8.self).split(separator: "\n").filter { $0 == path }.count
    }

    /// Waits (polling, up to `seconds`) until `condition` holds.
    func eventually(_ seconds: Double = 30, _ condition: () -> Bool) async throws -> Bool {
        let deadline = DispatchTime.now() + seconds
        while !condition() {
            if DispatchTime.now() > deadline { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// How `vetting.open(path)` ended: nil when it opened the file.
    static func outcome(_ vetting: HDF5Vetting, _ path: String) -> HDF5Error? {
        do {
            _ = try vetting.open(path)
            return nil
        } catch {
            return error
        }
    }

    /// `outcome` on a thread of its own: a check blocks for as long as its child takes, and the
    /// tests' shared task threads must not wait with it.
    static func outcomeOffPool(_ vetting: HDF5Vetting, _ path: String) async -> HDF5Error? {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: outcome(vetting, path)) }
        }
    }

    @Test("a check that could not be made reaches the API as unavailable (503), a refusal as unprocessable (422)")
    func errorKinds() {
        let unavailable = HDF5Error(.checkUnavailable, file: "/data/a.h5", detail: "its check did not finish in 20.0 s; ask again")
        let refused = HDF5Error(.openFailed, file: "/data/a.h5", detail: "the HDF5 library fails on this file")
        #expect(TensorError.unreadable(item: 3, file: "/data/a.h5", unavailable).kind == .unavailable)
        #expect(TensorError.unreadable(item: 3, file: "/data/a.h5", refused).kind == .unprocessable)
        #expect(!TensorError.unreadable(item: 3, file: "/data/a.h5", unavailable).message.contains("/data"))
    }

    @Test("a child that cannot be started is a 503 for that request, not a verdict: the next request checks")
    func spawnFailureIsNotRemembered() throws {
        let vetting = HDF5Vetting(timeoutMilliseconds: 60_000)
        vetting.enable(executable: child)  // not written yet: posix_spawn fails
        let file = try scanFile("crash.h5")
        let first = Self.outcome(vetting, file)
        #expect(first?.kind == .checkUnavailable, "\(String(describing: first))")
        #expect(first?.detail.contains("could be started") == true, "\(String(describing: first))")

        writeChild()
        let second = Self.outcome(vetting, file)
        #expect(second?.kind == .openFailed && second?.detail.contains("HDF5 library fails") == true, "\(String(describing: second))")
        // That one is a verdict: remembered, not asked again.
        let third = Self.outcome(vetting, file)
        #expect(third?.kind == .openFailed, "\(String(describing: third))")
        #expect(asked(file) == 1)
    }

    @Test("a check that times out is a 503 for that request, not a verdict: the next request checks")
    func timeoutIsNotRemembered() async throws {
        let vetting = HDF5Vetting(timeoutMilliseconds: 3_000)
        writeChild()
        vetting.enable(executable: child)
        let file = try scanFile("slow.h5")
        folder.write("slow.h5.hold", "")
        let first = await Self.outcomeOffPool(vetting, file)
        #expect(first?.kind == .checkUnavailable, "\(String(describing: first))")
        #expect(first?.detail.contains("did not finish") == true, "\(String(describing: first))")

        unlink(file + ".hold")
        let second = Self.outcome(vetting, file)
        #expect(second == nil, "\(String(describing: second))")
        #expect(asked(file) == 2)
        // The verdict (ok) is remembered.
        #expect(Self.outcome(vetting, file) == nil)
        #expect(asked(file) == 2)
    }

    @Test("a slow check holds up only its own file: another file's first open goes ahead, a second request for it waits")
    func slowChecksBlockOnlyTheirFile() async throws {
        let vetting = HDF5Vetting(timeoutMilliseconds: 120_000)
        writeChild()
        vetting.enable(executable: child)
        let slow = try scanFile("slow.h5")
        let fast = try scanFile("fast.h5")
        folder.write("slow.h5.hold", "")

        let results = Mutex<[String: HDF5Error?]>([:])
        for (key, path) in [("slow", slow), ("slow again", slow), ("fast", fast)] {
            if key == "slow again" || key == "fast" {
                // Once the first check of slow.h5 is under way in its child.
                #expect(try await eventually { access(slow + ".started", F_OK) == 0 }, "the slow check never started")
            }
            DispatchQueue.global().async {
                let error = Self.outcome(vetting, path)
                results.withLock { $0[key] = error }
            }
        }
        // fast.h5 is checked and opened while slow.h5's child still holds.
        #expect(try await eventually { results.withLock { $0.keys.contains("fast") } }, "fast.h5 waited behind slow.h5's check")
        #expect(access(slow + ".hold", F_OK) == 0)
        let early = results.withLock { $0 }
        #expect(early["fast"] == .some(nil), "\(early)")
        #expect(early["slow"] == nil && early["slow again"] == nil, "\(early)")

        unlink(slow + ".hold")
        #expect(try await eventually(60) { results.withLock { $0.count == 3 } }, "the checks of slow.h5 did not end")
        let all = results.withLock { $0 }
        #expect(all["slow"] == .some(nil) && all["slow again"] == .some(nil), "\(all)")
        // The second request for slow.h5 waited for the check under way (or found its verdict).
        #expect(asked(slow) == 1)
        #expect(asked(fast) == 1)
    }
}
