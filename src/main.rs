//! `devicetrust`: thin entry point; everything happens in the library's `app::run`.

fn main() {
    std::process::exit(devicetrust::app::run(std::env::args_os()));
}
