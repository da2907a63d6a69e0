"""PII masking measured on real passages from ../shared/data (read in place), with contact lines and look-alike
numbers injected at a sentence boundary: recall on phones, WeChat ids and ID numbers in contact contexts, false
masks on waybill, order and serial numbers, on numbers glued to letters or a decimal point, on "微信 <product>",
and on random 18-digit numbers. Every sample is seeded, so the numbers are reproducible; they are held above
floors (run with -s to see them). The issue's quoted examples are asserted one by one.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Callable

import pytest

from cmtp.transforms.filters.pii import _ID_CHECK, _ID_WEIGHTS, ID_BIRTH_RANGE, find_pii, luhn, mask_pii, valid_id_card
from cmtp.transforms.normalize import normalize_text

SEED = 15
# the forms a mobile number is written in: plain, grouped, and with the country code
PHONE_FORMS: dict[str, Callable[[str], str]] = {
    "plain": lambda d: d,
    "3-4-4 spaces": lambda d: f"{d[:3]} {d[3:7]} {d[7:]}",
    "3-4-4 dashes": lambda d: f"{d[:3]}-{d[3:7]}-{d[7:]}",
    "3-1-3-4 spaces": lambda d: f"{d[:3]} {d[3]} {d[4:7]} {d[7:]}",
    "4-3-4 spaces": lambda d: f"{d[:4]} {d[4:7]} {d[7:]}",
    "+86 3-4-4": lambda d: f"+86 {d[:3]} {d[3:7]} {d[7:]}",
    "+86-3-4-4": lambda d: f"+86-{d[:3]}-{d[3:7]}-{d[7:]}",
    "+86": lambda d: f"+86{d}",
    "(+86)": lambda d: f"(+86){d}",
    "（+86）": lambda d: f"（+86）{d}",
    "86-": lambda d: f"86-{d}",
    "0086": lambda d: f"0086 {d}",
}
PHONE_CONTEXTS = ("联系电话：{}", "手机 {}", "有意者请致电{}。", "电话/微信同号：{}", "咨询热线{}（工作日9:00-18:00）",
                  "zyh {}", "联系人：王先生 {}", "Tel: {}", "报名请拨打 {} 联系李老师", "我的手机号是{}，到了给我打电话",
                  "失主请联系{}", "房东电话{}，押金面议")
# labels that make an 11-digit number a waybill, order or serial number
WAYBILL_CONTEXTS = ("运单号：{}", "快递单号 {}", "订单号{}", "订单编号：{}", "物流单号为{}", "编号{}", "序列号：{}",
                    "SN:{}", "SN {}", "S/N: {}", "流水号 {}", "快递：{}")
GLUED_CONTEXTS = ("SN{}", "0.{}", "型号HX{}", "条码{}B", "批次_{}")
WECHAT_CONTEXTS = ("微信号：{}", "微信：{}", "微信号 {}", "vx：{}", "VX:{}", "wx：{}", "WeChat ID: {}", "加微信{}",
                   "加我微信 {} 备注来意", "V信：{}")
PRODUCT_CONTEXTS = ("微信 {} 版", "打开微信 {} 客户端", "微信{}版本更新了", "用微信 {} 登录")
CARD_CONTEXTS = ("卡号{}", "银行卡：{}", "请将货款转入{}，到账后发货", "工资卡是{}", "信用卡 {}")
ORDER_CONTEXTS = ("订单号：{}", "订单编号 {}", "运单号{}", "快递单号：{}", "编号{}", "流水号 {}", "SN:{}")
ID_CONTEXTS = ("身份证号：{}", "身份证号码{}", "证件号 {}", "乘客李某，身份证{}，请提前到达")
_LATIN_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]{5,19}(?![A-Za-z0-9])")


@pytest.fixture(scope="module")
def passages(shared_data) -> list[str]:
    return real_passages(shared_data)


@pytest.fixture(scope="module")
def latin_words(shared_data) -> list[str]:
    return real_latin_words(shared_data)


def real_passages(shared_data: Path) -> list[str]:
    """Real web-like and encyclopedic passages, normalized, 60-400 characters, with no PII of their own."""
    texts = []
    for line in (shared_data / "dureader" / "search.dev.json").read_text("utf-8").splitlines():
        for document in json.loads(line)["documents"]:
            texts += document["paragraphs"]
    for line in (shared_data / "wudao" / "flagai_demo.jsonl").read_text("utf-8").splitlines():
        texts.append(json.loads(line)["text"])
    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    texts += [paragraph["context"] for article in squad["data"] for paragraph in article["paragraphs"]]
    texts = sorted({normalize_text(text) for text in texts})
    return [text for text in texts if 60 <= len(text) <= 400 and "。" in text and not find_pii(text)]


def real_latin_words(shared_data: Path) -> list[str]:
    """Real Latin words of 6-20 characters (names, terms) from CMRC and CMNLI: id-shaped, but no WeChat ids."""
    text = (shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8")
    text += (shared_data / "cmnli" / "dev.tsv").read_text("utf-8")
    return sorted(set(_LATIN_WORD.findall(text)))


def inject(passage: str, sentence: str, rng: random.Random) -> str:
    """The passage with the sentence, ended by a full stop, put after one of its own full stops (a real next
    sentence may start with digits or letters: "。2007年", "。chromium", and a number run into them is no phone)."""
    cut = rng.choice([i + 1 for i, char in enumerate(passage) if char == "。"])
    return passage[:cut] + sentence + ("" if sentence.endswith("。") else "。") + passage[cut:]


def phone_number(rng: random.Random) -> str:
    """A random mainland mobile number: 1, then 3-9, then 9 digits."""
    return "1" + str(rng.randint(3, 9)) + "".join(rng.choice("0123456789") for _ in range(9))


def id_number(rng: random.Random) -> str:
    """A random valid resident ID number: a province code, a birth date in range, a sequence and its check character."""
    region = rng.choice(["11", "31", "44", "51", "65"]) + "".join(rng.choice("0123456789") for _ in range(4))
    low, high = ID_BIRTH_RANGE[0].toordinal(), ID_BIRTH_RANGE[1].toordinal()
    born = type(ID_BIRTH_RANGE[0]).fromordinal(rng.randint(low, high)).strftime("%Y%m%d")
    body = region + born + "".join(rng.choice("0123456789") for _ in range(3))
    return body + _ID_CHECK[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS)) % 11]


def card_number(rng: random.Random, grouped: bool = False) -> str:
    """A random bank card number passing Luhn: UnionPay (16 or 19 digits), Visa or Mastercard (16)."""
    prefix = rng.choice(["62", "4", "53"])
    length = rng.choice([16, 19]) if prefix == "62" else 16
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - 1 - len(prefix)))
    number = next(body + d for d in "0123456789" if luhn(body + d))
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4)) if grouped else number


def masked_share(cases: list[tuple[str, str, str]], mask: Callable = mask_pii) -> float:
    """Share of (passage, sentence, its masked form) whose masked form is in the passage once masked."""
    return sum(expected in mask(passage)[0] for passage, _, expected in cases) / len(cases)


def kept_share(cases: list[tuple[str, str]], mask: Callable = mask_pii) -> float:
    """Share of (passage, sentence) whose sentence survives masking unchanged."""
    return sum(sentence in mask(passage)[0] for passage, sentence in cases) / len(cases)


def phone_recall_cases(passages: list[str], n: int = 2400) -> list[tuple[str, str, str]]:
    """Contact lines with a phone number in each form, injected into real passages."""
    rng = random.Random(SEED)
    forms = sorted(PHONE_FORMS)
    cases = []
    for i in range(n):
        context, form = PHONE_CONTEXTS[i % len(PHONE_CONTEXTS)], forms[i % len(forms)]
        sentence = context.format(PHONE_FORMS[form](phone_number(rng)))
        cases.append((inject(rng.choice(passages), sentence, rng), sentence, context.format("<PHONE>")))
    return cases


def number_cases(passages: list[str], contexts: tuple[str, ...], n: int = 2000) -> list[tuple[str, str]]:
    """Random phone-shaped 11-digit numbers in the given contexts, injected into real passages."""
    rng = random.Random(SEED + 1)
    cases = []
    for i in range(n):
        sentence = contexts[i % len(contexts)].format(phone_number(rng))
        cases.append((inject(rng.choice(passages), sentence, rng), sentence))
    return cases


def wechat_recall_cases(passages: list[str], n: int = 1000) -> list[tuple[str, str, str]]:
    """WeChat ids (a letter, then 5-15 of letters, digits, _ and -) after an id label, injected into real passages."""
    rng = random.Random(SEED + 2)
    cases = []
    for i in range(n):
        wechat_id = rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") + "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_-") for _ in range(rng.randint(5, 15)))
        context = WECHAT_CONTEXTS[i % len(WECHAT_CONTEXTS)]
        sentence = context.format(wechat_id) + "。"
        cases.append((inject(rng.choice(passages), sentence, rng), sentence, context.format("<WECHAT>") + "。"))
    return cases


def product_cases(passages: list[str], words: list[str], n: int = 1000) -> list[tuple[str, str]]:
    """Real Latin words after "微信" without an id label, injected into real passages."""
    rng = random.Random(SEED + 3)
    cases = []
    for i in range(n):
        sentence = PRODUCT_CONTEXTS[i % len(PRODUCT_CONTEXTS)].format(rng.choice(words))
        cases.append((inject(rng.choice(passages), sentence, rng), sentence))
    return cases


def random_18_digit_numbers(n: int = 20000) -> list[str]:
    """Seeded random 18-digit numbers (no leading zero): order numbers, waybills, hashes."""
    rng = random.Random(SEED + 4)
    return [str(rng.randrange(10 ** 17, 10 ** 18)) for _ in range(n)]


def card_cases(passages: list[str], contexts: tuple[str, ...], n: int = 1000) -> list[tuple[str, str, str]]:
    """Luhn-valid card-shaped numbers (every other one grouped by 4) in the given contexts, in real passages."""
    rng = random.Random(SEED + 6)
    cases = []
    for i in range(n):
        context = contexts[i % len(contexts)]
        sentence = context.format(card_number(rng, grouped=i % 2 == 1))
        cases.append((inject(rng.choice(passages), sentence, rng), sentence, context.format("<BANK_CARD>")))
    return cases


def id_recall_cases(passages: list[str], n: int = 1000) -> list[tuple[str, str, str]]:
    """Valid resident ID numbers after an ID label, injected into real passages."""
    rng = random.Random(SEED + 5)
    cases = []
    for i in range(n):
        context = ID_CONTEXTS[i % len(ID_CONTEXTS)]
        sentence = context.format(id_number(rng))
        cases.append((inject(rng.choice(passages), sentence, rng), sentence, context.format("<ID_CARD>")))
    return cases


def test_the_issue_examples():
    assert mask_pii("zyh 138 0 153 6330") == ("zyh <PHONE>", ["phone"])
    for text in ("138-0153-6330", "+86 138 0153 6330", "(+86)13801536330", "86-13801536330", "（+86）138 0153 6330",
                 "0086 13801536330", "+86-138-0153-6330", "186 1234 5678"):
        assert mask_pii(f"联系我：{text}。") == ("联系我：<PHONE>。", ["phone"]), text
    for text in ("SN13912345678", "0.15912345678", "运单号：13912345678", "SN: 13912345678", "订单编号为 13912345678",
                 "微信 Android 版", "增加微信粉丝", "参加微信 Summit2020 大会", "6222 1381 2345 678"):
        assert find_pii(text) == [], text
    assert mask_pii("168 131-8281-8311 025") == ("168 <PHONE> 025", ["phone"])  # one of a list of numbers
    assert mask_pii("微信号：abc_123456，vx:Zhang-San88") == ("微信号：<WECHAT>，vx:<WECHAT>", ["wechat", "wechat"])
    assert mask_pii("添加微信 lixiaoming88") == ("添加微信 <WECHAT>", ["wechat"])


def test_id_card_birth_dates_are_held_to_a_fixed_range():
    assert valid_id_card("11010519491231002X")
    assert valid_id_card("110105190001010028") and valid_id_card("110105203012310026")  # the range's ends
    # right check characters, but born in year 0001, 2031 or 1899, or in no province (99)
    for number in ("110105000112310023", "110105203112310023", "110105189912310023", "990105194912310023"):
        assert not valid_id_card(number), number


def test_phones_in_contact_lines_are_masked_in_every_form(passages):
    cases = phone_recall_cases(passages)
    recall = masked_share(cases)
    print(f"\nphone recall on {len(cases)} contact lines in real passages: {recall:.4f}")
    missed = [sentence for passage, sentence, expected in cases if expected not in mask_pii(passage)[0]]
    assert recall >= 0.99, missed[:10]


def test_waybill_order_and_glued_numbers_are_not_masked(passages):
    labelled = kept_share(number_cases(passages, WAYBILL_CONTEXTS))
    glued = kept_share(number_cases(passages, GLUED_CONTEXTS))
    print(f"\nphone-shaped numbers kept: after a waybill/order/serial label {labelled:.4f}, glued {glued:.4f}")
    assert labelled >= 0.995 and glued == 1.0


def test_wechat_ids_need_an_id_label_and_an_id_shape(passages, latin_words):
    recall = masked_share(wechat_recall_cases(passages))
    products = kept_share(product_cases(passages, latin_words))
    print(f"\nWeChat recall {recall:.4f}; '微信 <real Latin word>' kept {products:.4f} ({len(latin_words)} words)")
    assert recall >= 0.99 and products == 1.0


def test_random_18_digit_numbers_are_rarely_taken_for_id_numbers(passages):
    numbers = random_18_digit_numbers()
    as_id = sum(valid_id_card(number) for number in numbers)
    recall = masked_share(id_recall_cases(passages))
    print(f"\nrandom 18-digit numbers taken for IDs: {as_id} of {len(numbers)}; ID recall {recall:.4f}")
    assert as_id <= 3 and recall == 1.0


def test_card_numbers_are_masked_after_card_labels_and_kept_after_order_labels(passages):
    recall = masked_share(card_cases(passages, CARD_CONTEXTS))
    orders = kept_share([(passage, sentence) for passage, sentence, _ in card_cases(passages, ORDER_CONTEXTS)])
    print(f"\nbank card recall {recall:.4f}; Luhn-valid numbers after order labels kept {orders:.4f}")
    assert recall == 1.0 and orders >= 0.995


def test_real_text_has_no_new_false_masks(shared_data):
    """On CSL abstracts and CMRC contexts (prose without contact data) nothing is masked."""
    texts = [line.split("\t")[1] for line in (shared_data / "csl" / "ts_dev.tsv").read_text("utf-8").splitlines()]
    squad = json.loads((shared_data / "cmrc2018" / "squad-style" / "cmrc2018_trial.json").read_text("utf-8"))
    texts += [paragraph["context"] for article in squad["data"] for paragraph in article["paragraphs"]]
    found = [(kind, text[max(0, s - 10):e + 5]) for text in map(normalize_text, texts) for kind, s, e in find_pii(text)]
    assert found == []

