"""What a mined chat question is about, and whether a reply really answers it (issue 15).

Every cue list of the chat miner's scope and answer checks lives here, each
with where it came from. None of them is a string copied from a labelled JDDC
candidate; they are the vocabulary of any web shop's customer service, in
Chinese and English:

* the e-commerce service topics (:data:`TOPICS`) are the headings of a shop's
  help centre — payment, invoices, delivery, returns and refunds, after-sales
  and warranty, membership and points, coupons, price protection, accounts —
  as the bundled sample store's policies (examples/sample_store/policies) and
  any platform help page name them;
* the one-order cues (:data:`_ONE_ORDER`) are how customers ask about *their*
  case: a delivery date, a courier, a status, "查到了吗", "where is my…",
  plus the placeholders the scrubber and JDDC's anonymisation leave for values
  only one order knows ([订单x] [数字x] [地址x] [链接x] [日期x] [ORDER] …);
* the listing cues (:data:`_LISTING`) are demonstratives that point at the
  item on screen ("这款", "this one") and words that address one seller
  ("老板", "掌柜");
* the merchant-side cues (:data:`_MERCHANT`) are a seller's vocabulary (back
  office, waybills, shop, "my customer") — what a shop owner asks a platform;
* the context cues (:data:`_FOLLOW_UP`) are openers and pronouns that lean on
  an earlier turn ("那…", "也就是说", "what about"; English "it"/"they" in a question naming no topic);
* the reply cues (:data:`_ASKS_BACK`, :data:`_VAGUE`, :data:`_ONE_CASE_REPLY`)
  are how an agent asks the customer for details, hedges ("以…为准"), or
  reports an action on one order ("已经反馈", "还没发货");
* the turn-cleaning lists at the end (:data:`GREETING`, :data:`CHITCHAT`,
  :data:`FILLER`, :data:`ORDER_ANSWER` …, used by :mod:`kbops.extract.chats`)
  are the greetings, chit-chat, filler and sign-offs of shop chat in both
  languages, from the issue-4 miner.

A question that is in scope but leans on context can be rewritten from the
customer's earlier turns (:func:`carry_topic`): the topic noun of the nearest
earlier turn that names a topic is carried into it, and the earlier turn is
kept as evidence.
"""

from __future__ import annotations

import re

from kbops.text import detect_lang, normalize, tokens

# --- question scope -------------------------------------------------------------

#: Shop service topics, most specific first (the first match names the topic).
TOPICS_ZH = (
    "增值税专用发票", "专用发票", "电子发票", "纸质发票", "增票", "发票抬头", "发票", "价格保护", "价保", "保价", "退差价",
    "货到付款", "信用卡", "银行卡", "白条", "分期", "余额", "礼品卡", "E卡", "优惠券", "积分", "会员", "运费险", "运费",
    "包邮", "上门取件", "退换货", "无理由退货", "退货", "换货", "退款", "售后", "保修", "质保", "维修", "安装",
    "自提", "配送", "快递", "物流", "改寄", "收货地址", "地址", "预售", "定金", "到货通知", "发货", "账号", "密码", "实名认证",
    "企业账号", "验证码", "支付", "付款", "评价", "订单",
)
TOPICS_EN = (
    "vat invoice", "invoice", "ship", "deliver", "price protection", "cash on delivery", "credit card", "gift card", "coupon", "points",
    "membership", "shipping", "delivery", "express", "return", "exchange", "refund", "warranty", "repair", "installation",
    "pickup", "address", "pre-order", "account", "password", "payment",
)
_TOPIC_ZH = re.compile("|".join(map(re.escape, TOPICS_ZH)))
_TOPIC_EN = re.compile(r"\b(?:" + "|".join(map(re.escape, TOPICS_EN)) + r")s?\b", re.IGNORECASE)

#: Placeholders for values only one order or customer knows (kbops.pii and JDDC's anonymisation).
_CASE_PLACEHOLDER = re.compile(r"\[(?:ORDER|PHONE|EMAIL|ADDRESS|ID|CARD|NAME)\]|\[(?:订单|地址|姓名|电话|数字|金额|日期|时间|站点|链接)x\]")
#: The customer's own order, shipment, refund or case.
_ONE_ORDER = re.compile(
    r"我的(?:订单|快递|包裹|货|东西|件|商品|退款|钱|发票|售后|单|申请|号码|账户)|我(?:买|下单|订|拍|退|申请|寄|提交|付)的|"
    r"(?:我|我们)(?:这|那)(?:个|边|单|件|台)|这(?:个|单|件|笔)(?:订单|快递|包裹|退款|钱)|"
    r"到哪(?:了|里了|儿了)?|怎么还(?:没|不)|还没(?:到|发|收到|退|有)|(?:什么时候|几时)(?:能|可以|会)?(?:到|发货|送|退|寄|发出)|"
    r"几(?:号|点|天)(?:能)?到|(?:今天|明天|今晚|下午|上午|后天)(?:能|可以|会|就)?(?:到|发|送|取|退)|能不能到|帮我(?:查|看|问|催|改|取消|处理|退|登记)|查到了|"
    r"怎么样了|进度|结果|催一?下|刚刚|我现在|我(?:该|应该)?怎么办|(?:今天|明天|后天)[^，,。？?]{0,6}(?:投递|派送|配送|送货|安排)|(?:快递员|配送员|派送员|送货员|快递小哥)|(?:发出|发货|到货|签收)了(?:吗|么|没)|"
    r"\b(?:my|our) (?:order|parcel|package|refund|delivery|item|account)|\bwhere is\b|\bhasn'?t (?:arrived|shipped)|"
    r"\b(?:track|cancel|change|modify)\w* (?:the |this |that )?(?:order|purchase|parcel|package) |\b(?:arrive|ship) (?:today|tomorrow)\b|\d{6,}",
    re.IGNORECASE,
)
#: The item on the customer's screen, or one seller.
_LISTING = re.compile(
    r"这(?:款|个|件|台|种|本|套|把|双|瓶|盒|支)|此(?:款|商品)|该商品|那(?:款|件|台)|那个(?:商品|东西|产品)|老板|掌柜|店家|你家|"
    r"\b(?:this|that) (?:one|item|model|product)\b",
    re.IGNORECASE,
)
#: A seller asking the platform.
_MERCHANT = re.compile(
    r"商家|店铺|后台|我(?:们)?(?:的)?(?:店|客户|顾客|客人|买家)|有个客人|客户(?:下单|签收|申请|退|拒收|要|想)|顾客|买家|打单|面单|"
    r"报备|入驻|招商|类目|保证金|货款|结算|上架|下架|运营|资质|\b(?:my|our) (?:customers?|shop|store|buyers?)\b|\bseller (?:centre|center|portal)\b",
    re.IGNORECASE,
)
#: Venting, not asking.
_COMPLAINT = re.compile(
    r"投诉|差评|垃圾|骗子|骗人|坑人|忽悠|欺骗|举报|无语|气死|搞什么|什么破|太(?:差|慢|坑|烂)|专业水平|态度|服务(?:太|真)|"
    r"\b(?:ridiculous|terrible|awful|scam|complain|unacceptable)\b",
    re.IGNORECASE,
)
#: Openers and pronouns that lean on an earlier turn.
_FOLLOW_UP = re.compile(
    r"^(?:那|那么|那如果|那要是|那个|所以|然后|还有|还是|就是说|也就是说|也就是|意思是|你(?:指|说)的|是指|那我|那要|那就|也|再|"
    r"so|then|and|but|what about|how about|what if)(?![么样种款些])|"
    r"(?:是吗|是吧|对吧|对吗|是不是|吧)[?？。]*$|^是(?:要|说)|[，,\s]那(?:怎么|么|如果|我|要|就)|这样|这种情况|这个情况|这个问题|上次|刚才|之前(?:的|那)|(?<!其)(?:他|她|它)们?|"
    r"^(?:之后|每个|都|要是)|^.{1,8}呢[?？]?$|还是[?？]*$",
    re.IGNORECASE,
)
#: English pronouns: a follow-up cue only in a question that names no topic and has under three content words of its
#: own ("Does it cover the battery?"; not "Is it possible to subscribe to your newsletter?").
_PRONOUN_EN = re.compile(r"\b(?:it|they|them|that|those|this)\b", re.IGNORECASE)
#: Questions about an item's attributes: without a SKU and without their own subject, about the item on screen.
_ATTRIBUTE = re.compile(
    r"保质期|生产日期|防水|功能|尺寸|型号|颜色|材质|重量|配件|赠品|正品|质量|效果|续航|接口|兼容|带[^，,。？?]{0,4}(?:吗|么)|送(?!到|货|达)[^，,。？?]{0,4}(?:吗|么)|"
    r"怎么(?:用|使用|安装)|如何(?:使用|安装)|\b(?:size|colou?r|material|weight|compatible|waterproof)\b",
    re.IGNORECASE,
)
#: An interrogative form (a question mark, a question particle or word, an English question opener).
_ASKS = re.compile(
    r"[?？]|吗|么|呢|怎|如何|什么|哪|多少|多久|多长|多大|几|是否|能否|有没有|能不能|可不可以|会不会|是不是|要不要|为什么|为啥|咋|"
    r"^(?:can|could|do|does|did|is|are|was|will|would|should|may|any)\b|\b(?:how|what|when|where|which|who|why)\b|"
    r"\b(?:want|need|like|wish|trying|try) to\b|\b(?:help|assist|tell|show)(?:ing)? me\b|\bhelp\b|\bassistance\b|"
    r"\bcan'?t\b|\bcannot\b|\b(?:could|can|would|will) (?:you|u|ya)\b|\binformation\b|\binfo\b",
    re.IGNORECASE,
)
ZH_FUNCTION = set("我你您他她它的了吗呢啊呀吧哦么嘛哈啦是不没在这那个些么什怎样哪为啥就都还也给帮下一有要可以能会吧对好请问多少")


#: Words that name no topic ("具体时间", "这个问题", "怎么操作"): a question made only of these leans on context.
_GENERIC = re.compile(r"具体|时间|问题|情况|东西|操作|处理|意思|一下|现在|还有|办法|怎么办|应该|需要|知道|可能|自己|为什么|有关")


def topic_chars(text: str) -> int:
    """Content characters (zh) or words (en) left once generic words are removed."""
    return len(content_chars(_GENERIC.sub("", text)))


def topic_of(text: str) -> str:
    """The first shop service topic the text names, or ""."""
    m = _TOPIC_ZH.search(text) or _TOPIC_EN.search(text)
    return m.group(0) if m else ""


def content_chars(text: str) -> set[str]:
    """Topic-bearing CJK characters (zh) or word stems (en) of a text."""
    core = normalize(text)
    if detect_lang(core) == "zh":
        return {ch for ch in core if "\u4e00" <= ch <= "\u9fff" and ch not in ZH_FUNCTION}
    return {t[:5] for t in tokens(core) if len(t) > 2 and t not in _EN_STOP}


_EN_STOP = set(
    "possible the and you your are can could does did will would what when where which how why yes not for with this that have has "
    "our any all but was were from they them then than there here about been just also into its it's i'm don't can't".split()
)


def garbled(text: str) -> bool:
    """Unreadable: mostly punctuation, repeated marks, or one character repeated."""
    core = re.sub(r"\s", "", text)
    if not core:
        return True
    marks = sum(1 for ch in core if not (ch.isalnum() or "\u4e00" <= ch <= "\u9fff"))
    return marks / len(core) > 0.4 or bool(re.search(r"[?？]{3,}|(.)\1{4,}", core))


def question_scope(question: str, has_sku: bool) -> str:
    """Why a cleaned customer question is not a general FAQ question, or "general".

    ``one_order`` | ``merchant_side`` | ``complaint`` | ``garbled`` |
    ``statement`` (no interrogative form: "大概1.5厘米，应该可以", "Great, I'll do that now.") |
    ``listing`` (about the item on screen: an FAQ only for a known SKU, see
    :func:`kbops.extract.chats.group_proposal`) | ``context`` (leans on an
    earlier turn: rewrite or drop).
    """
    if garbled(question):
        return "garbled"
    if not _ASKS.search(question):
        return "statement"
    if _CASE_PLACEHOLDER.search(question) or _ONE_ORDER.search(question):
        return "one_order"
    if _MERCHANT.search(question):
        return "merchant_side"
    if _COMPLAINT.search(question):
        return "complaint"
    if (m := _ATTRIBUTE.search(question)) and topic_chars(question.replace(m.group(0), "")) <= 3:
        return "listing"  # "带电子狗吗", "保质期是多久": an attribute of the item on screen, no subject of its own
    follow_up = _FOLLOW_UP.search(question) or (_PRONOUN_EN.search(question) and not topic_of(question) and len(content_chars(question)) < 3)
    if follow_up and not (has_sku and _LISTING.search(question) and not _leans_beyond_listing(question)):
        return "context"
    if _LISTING.search(question):
        return "listing"
    if detect_lang(question) == "zh" and topic_chars(question) < 2:
        return "context"  # "没有具体时间吗": nothing left to ask about without the earlier turns
    return "general"


def _leans_beyond_listing(question: str) -> bool:
    """A follow-up cue other than the listing demonstrative itself ("这个电饭煲…" only points at the item)."""
    return bool(_FOLLOW_UP.search(_LISTING.sub("", question)))


def carry_topic(question: str, earlier: list[str]) -> tuple[str, str]:
    """Rewrite a follow-up into a self-contained question from earlier customer turns.

    Returns ``(rewritten, source_turn)``, or ``("", "")`` when no earlier turn
    names a topic, or when the nearest turn it could lean on is about one order
    or a seller's case (then the question is dropped as context-bound). Only the
    follow-up opener is removed; the topic noun of the nearest earlier turn
    that names one is put in front ("关于发票，如果税号填错了怎么办？",
    "About the warranty: does it cover the battery?"). A question that already
    names its own topic only loses the opener.
    """
    if _ELLIPTICAL.search(question):
        return "", ""  # "售后维修呢?": the predicate is in the earlier turn, not just the topic
    own = topic_of(question)
    lang = detect_lang(question)
    stripped = _OPENER.sub("", question).strip(" ，,") or question
    if own and not _PRONOUN_ONLY.search(stripped):
        return (stripped[:1].upper() + stripped[1:] if lang == "en" else stripped), ""
    for turn in reversed(earlier):
        if _CASE_PLACEHOLDER.search(turn) or _ONE_ORDER.search(turn) or _MERCHANT.search(turn):
            return "", ""  # a follow-up inherits the scope of the turn it leans on: one order, or a seller's case
        topic = topic_of(turn)
        if topic and topic not in question:
            if lang == "zh":
                return f"关于{topic}，{stripped}", turn
            return f"About the {topic.lower()}: {stripped[:1].lower() + stripped[1:]}", turn
    return "", ""


_OPENER = re.compile(
    r"^(?:那么|那我|那要(?!是)|那就|那个|那|所以|然后|还有|也就是说|就是说|意思是|"
    r"so|then|and|but|what about|how about)[\s,，、]*",
    re.IGNORECASE,
)
_ELLIPTICAL = re.compile(r"^.{1,8}呢[?？]?$|^(?:what|how) about\b", re.IGNORECASE)
_PRONOUN_ONLY = re.compile(r"这样|这种情况|这个情况|这个问题|上次|刚才|(?<!其)(?:他|她|它)们?|\b(?:it|they|them|that|this)\b", re.IGNORECASE)

# --- answers ----------------------------------------------------------------------

#: The agent asks the customer for details instead of answering.
_ASKS_BACK = re.compile(
    r"请问|您是(?:使用|用|要|想|说|指|咨询|哪|在|什么)|哪(?:个|种|一|里|款)[^。！!]{0,12}(?:呢|吗|？|\?)|什么[^。！!]{0,8}(?:呢|？|\?)|"
    r"是(?:否|不是)[^。！!]{0,12}(?:呢|吗|？|\?)|您(?:的)?(?:新)?(?:地址|账号|订单号|手机号)是|"
    r"\b(?:could|can) you (?:tell|send|share|provide)|\bwhich (?:one|order|item)\b|\bwhat is your\b",
    re.IGNORECASE,
)
#: A hedge that tells the customer nothing.
_VAGUE = re.compile(
    r"以[^。，,]{0,10}为准|不确定|无法确定|不清楚|不好说|系统(?:的)?原因|不会的|您先不要着急|不要着急|耐心|稍后|会联系您|"
    r"具体(?:的)?(?:要|需要|还需要)?(?:看|咨询|联系)|建议您(?:再)?等|分内之事|很高兴能帮|"
    r"\b(?:it depends|not sure|cannot confirm|can't confirm)\b",
    re.IGNORECASE,
)
#: A report on, or an action for, one order.
_ONE_CASE_REPLY = re.compile(
    r"已(?:经)?(?:为您|帮您|给您)?(?:反馈|介入|安排|分配|处理|退款|退回|发货|发出|采购|到货|审核|催|登记|提交|取消|修改|联系|通知|备注)|"
    r"还(?:未|没)(?:发货|刷新|更新|到|审核|出库)|(?:给|为)您送|尽(?:快|力)(?:早点)?(?:为您|给您)(?:配送|送|安排|处理)|(?:现在|目前)(?:还)?(?:在|没|未)|预约(?:都)?(?:满|已满)|这个订单|"
    r"\b(?:i(?:'ve| have)|we(?:'ve| have)) (?:checked|updated|cancelled|refunded|escalated|arranged)\b|\byour (?:order|parcel|package)\b",
    re.IGNORECASE,
)


#: A reply addressed to a seller (a merchant-side exchange the question cues missed).
_SELLER_REPLY = re.compile(r"贵司|商家后台|您的店铺|\byour (?:shop|store)\b", re.IGNORECASE)


def answer_problem(question: str, answer: str) -> str:
    """Why a cleaned reply does not answer the question in general, or "" when it does.

    ``asks_back`` | ``vague`` | ``one_case`` | ``merchant_side`` | ``restates`` (says nothing the
    question did not) | ``off_topic`` (Chinese: shares no content character with the question).
    """
    if _ONE_CASE_REPLY.search(answer):
        return "one_case"
    if _SELLER_REPLY.search(answer):
        return "merchant_side"
    if _ASKS_BACK.search(answer):
        return "asks_back"
    if _VAGUE.search(answer):
        return "vague"
    q, a = content_chars(question), content_chars(answer)
    zh = detect_lang(answer) == "zh"
    if zh and not q & a:  # English paraphrases too freely ("send back" / "return") for a word test
        return "off_topic"
    if len(a - q) < 4:
        return "restates"
    return ""


# --- turn cleaning (the cue lists kbops.extract.chats cuts greetings, filler and one-order sentences with) ---
# Where they came from: the chit-chat, filler and sign-off phrases of Chinese and English shop chat
# (the sample store's chats, the Bitext customer-support phrasings, JD's public service phrasing), and the
# placeholders of kbops.pii and JDDC's anonymisation.

GREETING = re.compile(
    r"^(?:你好|您好|在吗|在不在|请问|亲|人工客服|人工|客服|hi|hello|hey|good (?:morning|afternoon|evening))[\s,，。.!！~～]*",
    re.IGNORECASE,
)
QUESTION_CUES = re.compile(
    r"[？?]|吗|么|怎么|怎样|如何|能不能|能否|可不可以|可以|多久|多少|多长|什么|哪|是否|有没有|支持|为啥|为什么|"
    r"\b(?:how|what|when|where|which|can|could|do|does|is|are|will|why|want to (?:know|see|check)|need (?:to know|information|info|help)|"
    r"help me|tell me|show me|information (?:about|on)|info (?:about|on))\b",
    re.IGNORECASE,
)
CHITCHAT = re.compile(
    r"^(?:在吗|在不在|在么|你好|您好|hi|hello|hey|好的|好|嗯+|哦|ok|okay|谢谢|谢了|多谢|thanks|thank you|"
    r"明白了|知道了|没有了|没了|是的|对|bye|再见|拜拜|人工|转人工|是人工吗|客服|怎么样了?|然后呢|还在吗|还在么|有人吗|"
    r"what|really|sure|why)[\s,，。.!！?？~～了啊呀哈的呢吗么]*$",
    re.IGNORECASE,
)
# Asking for a person is a handoff request, not a question the KB could answer.
HUMAN_REQUEST = re.compile(r"(?:找|转|要|接)(?:个)?(?:人工|真人|客服)|人工客服|\b(?:human|real person|live agent|representative|speak to (?:an? )?(?:agent|person))\b", re.IGNORECASE)
FILLER = re.compile(
    r"请稍等|稍等|稍候|正在为您|马上为您|为您查询|帮您查询|查询一下|很高兴为您服务|有什么(?:问题|可以)|请问还有其他|还有其他|"
    r"不客气|祝您|感谢您|亲爱哒|您太客气|欢迎|^(?:您好|你好|亲|在的)[，,!！~～呢哦]*$|评价|满意度|点击表情|"
    r"善解人意|缘分|应该做的|为您服务|不便|见谅|谅解|耐心等待|感谢您的理解|怠慢|辛苦您|久等|^(?:抱歉|不好意思|对不起)[~～。！!]*$|"
    r"请问您是咨询|咨询之前的问题|服务专员|工号|小红人|专属客服|为您转接|转接|"
    r"please wait|one moment|let me check|happy to help|how can i help|anything else|you're welcome|"
    r"have a (?:nice|great) day|thank(?:s| you) for (?:contacting|reaching|your patience|waiting)|sorry for|apolog|"
    r"^(?:hi|hello|hey)\b[^.?!]{0,40}[.!]?$",
    re.IGNORECASE,
)
# Replies that ask for the order or act on one order: not reusable knowledge.
ORDER_ANSWER = re.compile(
    r"订单号|运单号|单号|(?<!不)提供(?:一?下)?|发(?:一?下|给我)|复制|截图|您的(?:订单|商品|快递|包裹|退款|售后|申请|服务单|问题)|"
    r"这边(?:帮|给|为|已|会|看|查|联系|反馈|登记|备注|申请|提交|操作)|(?:帮|给|为)您(?:登记|备注|申请|提交|催|联系|反馈|处理|操作|补|查|看|修改|取消|安排)|"
    r"已经?(?:为您|帮您|给您)|小妹|妹子|妹纸|请问是|这个商品吗|这个吗|是这个|"
    r"\b(?:your order|your parcel|your package|your refund|order number|i have (?:checked|updated|cancel)|i'(?:ve|ll) (?:check|update|cancel|escalat))",
    re.IGNORECASE,
)
# "抱歉，我们暂不支持货到付款…": the apology goes, the answer stays.
APOLOGY = re.compile(r"^(?:非常|十分|很)?(?:抱歉|不好意思|对不起)[，,、~～\s]*|^(?:sorry|i'm sorry|unfortunately)[,\s]+", re.IGNORECASE)
APOLOGY_ANY = re.compile(
    r"(?:真的|确实|实在)?(?:是)?(?:很|非常|十分)?(?:抱歉|不好意思)(?:的)?(?:呢|哦|呀|啦)?[，,~～。！!]?|给您添麻烦了?[，,]?|耽误您的?时间了?|"
    r"理解您的意思|嗯嗯|刚才很"
)
CLARIFYING = re.compile(r"(?:吗|么|是吧|对吧)[。.]?$|[？?]$")
HANDOFF_REPLY = re.compile(r"转接|转人工|专属客服|transfer(?:ring)? you|escalat", re.IGNORECASE)
# Placeholders whose value only one order or customer knows. A sentence that
# carries one is not reusable; JDDC's [数字x] hides the number the answer is about.
SPECIFIC = re.compile(
    r"\[(?:ORDER|PHONE|EMAIL|ADDRESS|ID|CARD|NAME)\]|\[(?:订单|地址|姓名|电话|邮箱|身份证号?|数字|金额|日期|时间|站点|链接|组织机构)x\]|"
    r"\[商品快照\]|\[[^\]]{1,12}\]|\{\{[^{}]{1,60}\}\}"
)
ADDRESS_TERMS = re.compile(r"^(?:亲爱的客户|亲爱的|亲爱滴|亲亲|亲|您好|你好)[，,~～!！\s]*|[，,\s]*(?:亲爱的|亲亲|亲)[~～!！。]*$")
SPECIFICITY = re.compile(r"\d|您的|这边|帮您|给您|为您|your|I will|I'll", re.IGNORECASE)
INSTRUCTION = re.compile(r"[-—>]|“|页面|点击|进入|选择|申请|上传|\b(?:click|go to|select|open|settings|page|tap)\b", re.IGNORECASE)
