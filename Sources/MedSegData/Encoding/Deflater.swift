internal import CZlib
import Synchronization

/// A raw deflate stream (RFC 1951, as ZIP's method 8 holds it) fed piece by piece.
///
/// Level 1: masks and label maps are mostly runs of zeros, which level 1 already shrinks
/// 60-150x at a tenth of level 6's cost (`bench/wire_codecs.py`). Not thread-safe: used only under
/// its `NPZWriter`'s lock.
final class Deflater: @unchecked Sendable {
    private var stream = z_stream()
    private var finished = false

    /// `zlibWrapped`: a zlib stream (header and Adler-32, as PNG holds it) rather than raw deflate.
    init(level: Int32 = 1, zlibWrapped: Bool = false) {
        let bits: Int32 = zlibWrapped ? 15 : -15
        let status = deflateInit2_(&stream, level, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        // Only out of memory fails here; zlib then leaves the stream unusable, as a trap would.
        precondition(status == Z_OK, "zlib deflateInit2 failed (\(status))")
    }

    deinit {
        deflateEnd(&stream)
    }

    /// Raw level-1 deflaters kept for reuse: setting one up has zlib allocate and clear ~270 KB
    /// of state, which cost more than deflating a label map (measured in bench/network.py).
    private static let spares = Mutex<[Deflater]>([])

    /// A raw level-1 deflater, reused when one is spare.
    static func raw() -> Deflater {
        spares.withLock { $0.popLast() } ?? Deflater()
    }

    /// Gives a finished raw level-1 deflater back for reuse (a few are kept).
    static func recycle(_ deflater: Deflater) {
        guard deflateReset(&deflater.stream) == Z_OK else { return }
        deflater.finished = false
        spares.withLock { spares in
            if spares.count < 8 { spares.append(deflater) }
        }
    }

    /// Compresses `input`, returning what deflate has ready so far (often nothing yet).
    func compress(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        run(input, flush: Z_NO_FLUSH)
    }

    /// Ends the stream, returning its last bytes.
    func finish() -> [UInt8] {
        guard !finished else { return [] }
        finished = true
        return run(UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH)
    }

    private func run(_ input: UnsafeRawBufferPointer, flush: Int32) -> [UInt8] {
        var output: [UInt8] = []
        var rest = input
        repeat {
            // zlib counts in 32 bits.
            let piece = UnsafeRawBufferPointer(rebasing: rest.prefix(1 << 30))
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(piece.count))
            let mode = rest.isEmpty ? flush : Z_NO_FLUSH
            stream.next_in = UnsafeMutablePointer(mutating: piece.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(piece.count)
            // Until zlib has taken all of the piece and, when finishing, written the stream's end.
            var status = Z_OK
            repeat {
                let room = max(16384, Int(deflateBound(&stream, uLong(stream.avail_in))))
                let produced = [UInt8](unsafeUninitializedCapacity: room) { buffer, count in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = uInt(room)
                    status = deflate(&stream, mode)
                    count = room - Int(stream.avail_out)
                }
                if output.isEmpty { output = produced } else { output += produced }
                // A negative status (no progress possible) ends it too, rather than spinning.
            } while status >= Z_OK && (mode == Z_FINISH ? status != Z_STREAM_END : (stream.avail_in > 0 || stream.avail_out == 0))
        } while !rest.isEmpty
        return output
    }
}
