//! The emoji catalogue: the 99 emoji the public emojivoto sample offers
//! (its list is called "top 100"; `:relaxed:` left it), in its order, as
//! (shortcode, unicode).
//!
//! The order matters to clients that show the list as the sample does
//! (`:doughnut:` third); the unicode strings are written as escapes so the
//! exact code points (ZWJ sequences, variation selectors) are visible.

/// One emoji of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emoji {
    /// `:doughnut:`, colons included, as the sample's API carries it.
    pub shortcode: &'static str,
    /// The emoji itself.
    pub unicode: &'static str,
}

/// The shortcode whose vote always fails: the demo's built-in error.
pub const DOUGHNUT: &str = ":doughnut:";

const fn e(shortcode: &'static str, unicode: &'static str) -> Emoji {
    Emoji { shortcode, unicode }
}

/// Every emoji, in the sample's order.
pub const ALL: [Emoji; 99] = [
    e(":joy:", "\u{1F602}"),
    e(":sunglasses:", "\u{1F60E}"),
    e(":doughnut:", "\u{1F369}"),
    e(":stuck_out_tongue_winking_eye:", "\u{1F61C}"),
    e(":money_mouth_face:", "\u{1F911}"),
    e(":flushed:", "\u{1F633}"),
    e(":mask:", "\u{1F637}"),
    e(":nerd_face:", "\u{1F913}"),
    e(":ghost:", "\u{1F47B}"),
    e(":skull_and_crossbones:", "\u{2620}\u{FE0F}"),
    e(":heart_eyes_cat:", "\u{1F63B}"),
    e(":hear_no_evil:", "\u{1F649}"),
    e(":see_no_evil:", "\u{1F648}"),
    e(":speak_no_evil:", "\u{1F64A}"),
    e(":boy:", "\u{1F466}"),
    e(":girl:", "\u{1F467}"),
    e(":man:", "\u{1F468}"),
    e(":woman:", "\u{1F469}"),
    e(":older_man:", "\u{1F474}"),
    e(":policeman:", "\u{1F46E}\u{200D}\u{2642}\u{FE0F}"),
    e(":guardsman:", "\u{1F482}\u{200D}\u{2642}\u{FE0F}"),
    e(
        ":construction_worker_man:",
        "\u{1F477}\u{200D}\u{2642}\u{FE0F}",
    ),
    e(":prince:", "\u{1F934}"),
    e(":princess:", "\u{1F478}"),
    e(":man_in_tuxedo:", "\u{1F935}"),
    e(":bride_with_veil:", "\u{1F470}"),
    e(":mrs_claus:", "\u{1F936}"),
    e(":santa:", "\u{1F385}"),
    e(":turkey:", "\u{1F983}"),
    e(":rabbit:", "\u{1F430}"),
    e(":no_good_woman:", "\u{1F645}\u{200D}\u{2640}\u{FE0F}"),
    e(":ok_woman:", "\u{1F646}\u{200D}\u{2640}\u{FE0F}"),
    e(":raising_hand_woman:", "\u{1F64B}\u{200D}\u{2640}\u{FE0F}"),
    e(":bowing_man:", "\u{1F647}\u{200D}\u{2642}\u{FE0F}"),
    e(":man_facepalming:", "\u{1F926}\u{200D}\u{2642}\u{FE0F}"),
    e(":woman_shrugging:", "\u{1F937}\u{200D}\u{2640}\u{FE0F}"),
    e(":massage_woman:", "\u{1F486}\u{200D}\u{2640}\u{FE0F}"),
    e(":walking_man:", "\u{1F6B6}\u{200D}\u{2642}\u{FE0F}"),
    e(":running_man:", "\u{1F3C3}\u{200D}\u{2642}\u{FE0F}"),
    e(":dancer:", "\u{1F483}"),
    e(":man_dancing:", "\u{1F57A}"),
    e(":dancing_women:", "\u{1F46F}\u{200D}\u{2640}\u{FE0F}"),
    e(":rainbow:", "\u{1F308}"),
    e(":skier:", "\u{26F7}\u{FE0F}"),
    e(":golfing_man:", "\u{1F3CC}\u{FE0F}\u{200D}\u{2642}\u{FE0F}"),
    e(":surfing_man:", "\u{1F3C4}\u{200D}\u{2642}\u{FE0F}"),
    e(
        ":basketball_man:",
        "\u{26F9}\u{FE0F}\u{200D}\u{2642}\u{FE0F}",
    ),
    e(":biking_man:", "\u{1F6B4}\u{200D}\u{2642}\u{FE0F}"),
    e(":point_up_2:", "\u{1F446}"),
    e(":vulcan_salute:", "\u{1F596}"),
    e(":metal:", "\u{1F918}"),
    e(":call_me_hand:", "\u{1F919}"),
    e(":thumbsup:", "\u{1F44D}"),
    e(":wave:", "\u{1F44B}"),
    e(":clap:", "\u{1F44F}"),
    e(":raised_hands:", "\u{1F64C}"),
    e(":pray:", "\u{1F64F}"),
    e(":dog:", "\u{1F436}"),
    e(":cat2:", "\u{1F408}"),
    e(":pig:", "\u{1F437}"),
    e(":hatching_chick:", "\u{1F423}"),
    e(":snail:", "\u{1F40C}"),
    e(":bacon:", "\u{1F953}"),
    e(":pizza:", "\u{1F355}"),
    e(":taco:", "\u{1F32E}"),
    e(":burrito:", "\u{1F32F}"),
    e(":ramen:", "\u{1F35C}"),
    e(":champagne:", "\u{1F37E}"),
    e(":tropical_drink:", "\u{1F379}"),
    e(":beer:", "\u{1F37A}"),
    e(":tumbler_glass:", "\u{1F943}"),
    e(":world_map:", "\u{1F5FA}\u{FE0F}"),
    e(":beach_umbrella:", "\u{1F3D6}\u{FE0F}"),
    e(":mountain_snow:", "\u{1F3D4}\u{FE0F}"),
    e(":camping:", "\u{1F3D5}\u{FE0F}"),
    e(":steam_locomotive:", "\u{1F682}"),
    e(":flight_departure:", "\u{1F6EB}"),
    e(":rocket:", "\u{1F680}"),
    e(":star2:", "\u{1F31F}"),
    e(":sun_behind_small_cloud:", "\u{1F324}\u{FE0F}"),
    e(":cloud_with_rain:", "\u{1F327}\u{FE0F}"),
    e(":fire:", "\u{1F525}"),
    e(":jack_o_lantern:", "\u{1F383}"),
    e(":balloon:", "\u{1F388}"),
    e(":tada:", "\u{1F389}"),
    e(":trophy:", "\u{1F3C6}"),
    e(":iphone:", "\u{1F4F1}"),
    e(":pager:", "\u{1F4DF}"),
    e(":fax:", "\u{1F4E0}"),
    e(":bulb:", "\u{1F4A1}"),
    e(":money_with_wings:", "\u{1F4B8}"),
    e(":crystal_ball:", "\u{1F52E}"),
    e(":underage:", "\u{1F51E}"),
    e(":interrobang:", "\u{2049}\u{FE0F}"),
    e(":100:", "\u{1F4AF}"),
    e(":checkered_flag:", "\u{1F3C1}"),
    e(":crossed_swords:", "\u{2694}\u{FE0F}"),
    e(":floppy_disk:", "\u{1F4BE}"),
    e(":poop:", "\u{1F4A9}"),
];

/// The emoji with this shortcode (colons included), if any.
pub fn find(shortcode: &str) -> Option<&'static Emoji> {
    ALL.iter().find(|emoji| emoji.shortcode == shortcode)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn shortcodes_are_unique_and_colon_wrapped() {
        let unique: HashSet<_> = ALL.iter().map(|e| e.shortcode).collect();
        assert_eq!(unique.len(), ALL.len());
        for emoji in ALL {
            let inner = emoji
                .shortcode
                .strip_prefix(':')
                .and_then(|s| s.strip_suffix(':'))
                .unwrap_or_else(|| panic!("{} is not :wrapped:", emoji.shortcode));
            assert!(
                !inner.is_empty()
                    && inner
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                emoji.shortcode
            );
            assert!(!emoji.unicode.is_empty() && !emoji.unicode.is_ascii());
        }
    }

    #[test]
    fn the_sample_order_holds() {
        assert_eq!(ALL[0].shortcode, ":joy:");
        assert_eq!(ALL[2].shortcode, DOUGHNUT);
        assert_eq!(ALL[98].shortcode, ":poop:");
    }

    #[test]
    fn find_by_shortcode() {
        assert_eq!(find(DOUGHNUT).map(|e| e.unicode), Some("\u{1F369}"));
        assert_eq!(find(":100:").map(|e| e.unicode), Some("\u{1F4AF}"));
        assert_eq!(find("doughnut"), None, "colons are part of the shortcode");
        assert_eq!(find(":relaxed:"), None, "votable, but not listed");
        assert_eq!(find(""), None);
    }
}
