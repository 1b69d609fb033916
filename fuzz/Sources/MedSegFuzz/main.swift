import CFuzzer
import Glibc
import MedSegData

// SwiftPM gives every executable a Swift `main`, which takes the place of libFuzzer's; this one
// hands the command line to libFuzzer's driver, which calls `fuzzOneInput` for every input.
// As the server does, every HDF5 file is first opened by a child (this binary, `vet`): a file
// that crashes libhdf5 itself is refused like it is in medsegd, and what is left to find is ours.
if CommandLine.arguments.count > 1, CommandLine.arguments[1] == "vet" {
    while let line = readLine(strippingNewline: true) {
        HDF5Vetting.exercise(line)
        let answer = Array("ok\n".utf8)
        _ = answer.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }
    exit(0)
}
HDF5Vetting.shared.enable(executable: "/proc/self/exe")

// The scratch files and catalogs are made once, before any input: LeakSanitizer would count them
// against the first input.
_ = Scratch.shared
var arguments = CommandLine.argc
var vector: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(
    LLVMFuzzerRunDriver(&arguments, &vector) { data, size in
        guard let data else { return 0 }
        return fuzzOneInput(data, size)
    })
