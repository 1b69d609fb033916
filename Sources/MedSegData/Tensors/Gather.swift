internal import HDF5

/// Copies strided boxes of elements between C-order arrays: the last step of every direct read.
enum Gather {
    /// Copies the part of `selection` that lies inside a block of the array (a decoded chunk, or
    /// a span read from a contiguous dataset) to where it belongs in the dense C-order output of
    /// the whole selection. The block holds `blockShape` elements and starts at `blockOrigin`.
    static func copy(
        _ block: UnsafeRawPointer, blockOrigin: [Int], blockShape: [Int], selection: Hyperslab,
        output: UnsafeMutableRawPointer, elementSize: Int
    ) {
        let rank = blockShape.count
        guard rank > 0 else {
            output.copyMemory(from: block, byteCount: elementSize)
            return
        }
        // Per axis: the selection positions inside this block (consecutive output positions) and
        // the element index of the first one within the block.
        var firstPosition = [Int](repeating: 0, count: rank)
        var positionCount = [Int](repeating: 0, count: rank)
        var firstIndex = [Int](repeating: 0, count: rank)
        for axis in 0..<rank {
            let start = selection.start[axis]
            let step = selection.stride[axis]
            let origin = blockOrigin[axis]
            // The first position p with start + p * step >= origin, and the last below origin + length.
            let lowest = origin > start ? (origin - start + step - 1) / step : 0
            let highest = min(selection.count[axis] - 1, (origin + blockShape[axis] - 1 - start) / step)
            guard origin + blockShape[axis] - 1 >= start, highest >= lowest else { return }
            firstPosition[axis] = lowest
            positionCount[axis] = highest - lowest + 1
            firstIndex[axis] = start + lowest * step - origin
        }
        var blockStrides = [Int](repeating: 1, count: rank)
        var outputStrides = [Int](repeating: 1, count: rank)
        for axis in stride(from: rank - 2, through: 0, by: -1) {
            blockStrides[axis] = blockStrides[axis + 1] * blockShape[axis + 1]
            outputStrides[axis] = outputStrides[axis + 1] * selection.count[axis + 1]
        }
        // Trailing axes covered whole in both the block and the output are contiguous in both:
        // they fold into the axis before them (a (48, 96, 1) chunk copies rows of 96 elements).
        func whole(_ axis: Int) -> Bool {
            firstIndex[axis] == 0 && positionCount[axis] == blockShape[axis] && firstPosition[axis] == 0
                && positionCount[axis] == selection.count[axis] && (selection.stride[axis] == 1 || positionCount[axis] == 1)
        }
        var last = rank - 1
        while last > 0, whole(last) { last -= 1 }
        let inner = blockStrides[last]  // elements per position along `last`
        let runCount = positionCount[last]
        let step = selection.stride[last]
        // An odometer over the axes before `last`.
        var counter = [Int](repeating: 0, count: rank)
        while true {
            var blockOffset = firstIndex[last] * blockStrides[last]
            var outputOffset = firstPosition[last] * outputStrides[last]
            for axis in 0..<last {
                blockOffset += (firstIndex[axis] + counter[axis] * selection.stride[axis]) * blockStrides[axis]
                outputOffset += (firstPosition[axis] + counter[axis]) * outputStrides[axis]
            }
            let from = block + blockOffset * elementSize
            let to = output + outputOffset * elementSize
            if step == 1 || runCount == 1 {
                to.copyMemory(from: from, byteCount: runCount * inner * elementSize)
            } else if inner == 1 {
                copyStrided(from, to, count: runCount, step: step * elementSize, elementSize: elementSize)
            } else {
                for k in 0..<runCount {
                    (to + k * inner * elementSize).copyMemory(from: from + k * step * inner * elementSize, byteCount: inner * elementSize)
                }
            }
            var axis = last - 1
            while axis >= 0 {
                counter[axis] += 1
                if counter[axis] < positionCount[axis] { break }
                counter[axis] = 0
                axis -= 1
            }
            if axis < 0 { return }
        }
    }

    private static func copyStrided(_ from: UnsafeRawPointer, _ to: UnsafeMutableRawPointer, count: Int, step: Int, elementSize: Int) {
        switch elementSize {
        case 1: for k in 0..<count { to.storeBytes(of: from.load(fromByteOffset: k * step, as: UInt8.self), toByteOffset: k, as: UInt8.self) }
        case 2:
            for k in 0..<count {
                to.storeBytes(of: from.loadUnaligned(fromByteOffset: k * step, as: UInt16.self), toByteOffset: k * 2, as: UInt16.self)
            }
        case 4:
            for k in 0..<count {
                to.storeBytes(of: from.loadUnaligned(fromByteOffset: k * step, as: UInt32.self), toByteOffset: k * 4, as: UInt32.self)
            }
        case 8:
            for k in 0..<count {
                to.storeBytes(of: from.loadUnaligned(fromByteOffset: k * step, as: UInt64.self), toByteOffset: k * 8, as: UInt64.self)
            }
        default: for k in 0..<count { (to + k * elementSize).copyMemory(from: from + k * step, byteCount: elementSize) }
        }
    }
}
