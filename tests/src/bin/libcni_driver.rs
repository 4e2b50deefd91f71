//! Builds the libcni Go driver if it is missing or older than its source, and
//! prints its path (`<target>/libcni/cni-libcni`). tests/kernel-vm.sh runs
//! it before booting its VM, where the host's files are read-only and Go
//! would build under emulation; going through `libcni::driver()` keeps the
//! build command in one place.

fn main() {
    println!("{}", cni_wasm_tests::libcni::driver().display());
}
