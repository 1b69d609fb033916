import CFuzzer
import Glibc

// SwiftPM gives every executable a Swift `main`, which takes the place of libFuzzer's; this one
// hands the command line to libFuzzer's driver, which calls `fuzzOneInput` for every input.
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
