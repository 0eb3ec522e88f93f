//! `uniffi-bindgen generate target/debug/libstocksync_ffi.so --language kotlin|swift|python
//! --out-dir DIR`: see `scripts/bindings.sh`, which runs it for all three.

fn main() {
    uniffi::uniffi_bindgen_main()
}
