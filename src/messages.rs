//! Cashier-facing texts for decisions, in the configured language (zh-CN or en).
//!
//! Short enough for a till display; they say what to do next. This module only maps
//! (language, outcome) to text and must not decide anything.

use crate::decision::Reason;
use crate::money::Money;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Language {
    #[default]
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "en")]
    En,
}

impl Language {
    pub fn tag(self) -> &'static str {
        match self {
            Language::ZhCn => "zh-CN",
            Language::En => "en",
        }
    }
}

pub fn accepted(language: Language, discount: Money, digits: u32) -> String {
    let amount = discount.display(digits);
    match language {
        Language::ZhCn => format!("核销成功，优惠 {amount} 元"),
        Language::En => format!("Accepted: {amount} off"),
    }
}

pub fn rejected(language: Language, reason: Reason) -> &'static str {
    use Reason::*;
    match language {
        Language::ZhCn => match reason {
            Malformed => "无法识别此二维码，请重新扫描或请顾客刷新券码",
            NoRuleset => "终端尚未加载券规则，请联系店长",
            UnknownKey => "券码签发方未知，不能核销",
            BadSignature => "券码签名无效，不能核销",
            ClockInvalid => "终端时间不正确，请联系店长校准时间",
            RulesetStale => "券规则已过期，请联网更新后再试",
            UnknownCampaign => "此券所属活动不在本终端规则中",
            PresentationRequired => "此券须出示动态码：请顾客在App中打开此券",
            PresentationExpired => "动态码已超时（截图？）：请顾客刷新后再扫，并核对手机时间",
            Revoked => "此券已作废",
            AlreadyRedeemed => "此券已使用",
            CampaignPaused => "活动已暂停",
            CampaignEnded => "活动已结束",
            NotYetValid => "此券尚未生效",
            Expired => "此券已过期",
            OutsideHours => "不在活动可用时段内",
            MerchantNotEligible => "本店不参与此活动",
            CategoryNotEligible => "本店类别不适用此券",
            BelowMinSpend => "未达到最低消费金额",
            BasketLimit => "本单可用券数量已达上限",
            HolderDailyLimit => "该用户今日使用次数已达上限",
            OfflineLimit => "离线核销已达上限，请联网同步后再试",
        },
        Language::En => match reason {
            Malformed => "Unreadable code: scan again or ask the customer to refresh it",
            NoRuleset => "No coupon rules on this terminal: call the manager",
            UnknownKey => "Coupon issuer unknown: cannot redeem",
            BadSignature => "Coupon signature invalid: cannot redeem",
            ClockInvalid => "Terminal clock is wrong: call the manager",
            RulesetStale => "Coupon rules expired: connect to update, then retry",
            UnknownCampaign => "Campaign not known to this terminal",
            PresentationRequired => "Live code needed: ask the customer to open the coupon in the app",
            PresentationExpired => "Live code too old (screenshot?): ask for a fresh one; check the phone's clock",
            Revoked => "Coupon revoked",
            AlreadyRedeemed => "Coupon already used",
            CampaignPaused => "Campaign paused",
            CampaignEnded => "Campaign ended",
            NotYetValid => "Coupon not valid yet",
            Expired => "Coupon expired",
            OutsideHours => "Outside the campaign's hours",
            MerchantNotEligible => "This shop is not in the campaign",
            CategoryNotEligible => "Not valid for this kind of shop",
            BelowMinSpend => "Below the minimum spend",
            BasketLimit => "Coupon limit for this sale reached",
            HolderDailyLimit => "Customer's daily limit reached",
            OfflineLimit => "Offline limit reached: sync, then retry",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_text_in_each_language() {
        for reason in Reason::ALL {
            for language in [Language::ZhCn, Language::En] {
                assert!(!rejected(language, reason).is_empty());
            }
        }
        assert_eq!(accepted(Language::En, Money(1000), 2), "Accepted: 10.00 off");
    }
}
