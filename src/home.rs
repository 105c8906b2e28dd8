//! headstart's own folder, outside any workspace: the unpacked bundled models and demo images and
//! the provisioned ONNX Runtime live there, so every workspace, test and install on a machine
//! shares one copy. Everything in it can be made again (unpacked from the binary or fetched), so
//! it is a cache folder and may be deleted at any time.

use std::ffi::OsString;
use std::path::PathBuf;

/// The home folder: `HEADSTART_HOME`, else `headstart` in the user's cache folder
/// (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on
/// Windows), else in the temporary folder.
pub fn home() -> PathBuf {
    choose(std::env::consts::OS, |name| std::env::var_os(name))
}

/// [`home`] for an operating system (`std::env::consts::OS`) and a way to read variables.
fn choose(os: &str, var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    // An empty or relative value is treated as unset, as the XDG specification asks: a relative
    // home would move with the current folder.
    let var = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(dir) = var("HEADSTART_HOME") {
        return dir;
    }
    let cache = match os {
        "macos" => var("HOME").map(|h| h.join("Library").join("Caches")),
        "windows" => var("LOCALAPPDATA"),
        _ => var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache"))),
    };
    cache.unwrap_or_else(std::env::temp_dir).join("headstart")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
    }

    #[cfg(unix)]
    #[test]
    fn home_follows_the_override_then_the_platform_cache_folder() {
        let all = [
            ("HEADSTART_HOME", "/opt/hs"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/u"),
            ("LOCALAPPDATA", "/local"),
        ];
        assert_eq!(choose("linux", env(&all)), PathBuf::from("/opt/hs"));
        assert_eq!(choose("linux", env(&all[1..])), PathBuf::from("/xdg/headstart"));
        assert_eq!(choose("linux", env(&all[2..])), PathBuf::from("/u/.cache/headstart"));
        assert_eq!(
            choose("macos", env(&all[1..])),
            PathBuf::from("/u/Library/Caches/headstart")
        );
        assert_eq!(choose("windows", env(&all[1..])), PathBuf::from("/local/headstart"));
        let relative = [("HEADSTART_HOME", "rel"), ("XDG_CACHE_HOME", ""), ("HOME", "/u")];
        assert_eq!(choose("linux", env(&relative)), PathBuf::from("/u/.cache/headstart"));
        assert_eq!(choose("linux", env(&[])), std::env::temp_dir().join("headstart"));
    }
}
