// medsegd is a Linux daemon: glibc's allocator controls, /proc, systemd's notify socket, Debian's
// libhdf5. Other platforms are not built or tested, so they are refused here, plainly.
#if !os(Linux)
#error("medsegd builds and runs on Linux only")
#endif
