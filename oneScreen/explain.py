"""Why a field of a screen holds what it holds: the policy rule that decided it, in words, with its basis.

Builds one Explanation per field from the task's field rule and the decision's status (and, for a field
denied before any read, the rule decide() named): which rule masks a value and why, the legal basis that
shows a usually masked value in full, which rule denies a field. Owns, with graphql/types.py which only
shapes it, that an explanation never holds a value: it is made from configuration (task, field, rule) alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .policy import NO_AGREEMENT, PROVIDER_MASK, Status, Task, TaskField, allowed_decision

# What each masking strategy leaves visible (masking.py), in Korean and English.
STRATEGY_WORDS: dict[str, tuple[str, str]] = {
    "rrn": ("생년월일과 성별 자리만 보이고 뒷자리 6자리는 가립니다",
            "only the birth date and the first digit of the back part show; the last six digits are hidden"),
    "name": ("성과 끝 글자만 보이고 가운데 글자는 가립니다", "only the first and last letters of the name show"),
    "phone": ("전화번호 가운데 자리를 가립니다", "the middle digits of the phone number are hidden"),
    "address": ("읍·면·동까지만 보이고 상세 주소는 가립니다", "only the area (읍·면·동) shows; the rest is hidden"),
    "date_year": ("날짜는 연도만 보입니다", "only the year of the date shows"),
}

SENSITIVITY_WORDS: dict[str, tuple[str, str]] = {
    "unique_id": ("고유식별정보", "unique identifier"), "sensitive": ("민감정보", "sensitive data"),
    "personal": ("개인정보", "personal data"), "internal": ("내부 정보", "internal"), "public": ("공개 정보", "public"),
}

# The kinds of explanation the screen tells apart (GraphQL FieldExplanation.kind).
MASK, FULL_VALUE, FIELD_SET, DENY, CONSENT = "MASK", "FULL_VALUE", "FIELD_SET", "DENY", "CONSENT"


@dataclass(frozen=True)
class Explanation:
    kind: str  # MASK, FULL_VALUE, FIELD_SET, DENY, CONSENT
    rule: str  # the rule as `onescreen policy explain` and the decision tests name it, e.g. "mask rrn"
    label: str  # what the rule does, in Korean
    label_en: str
    basis: str  # why: the legal basis or the task's rule, in Korean
    basis_en: str


def _strategy(mask: str | Mapping[str, str], tf: TaskField) -> tuple[str, str]:
    if isinstance(mask, str):
        return STRATEGY_WORDS.get(mask, (mask, mask))
    columns = {c.name: c for c in tf.target.columns}
    ko, en = [], []
    for col, strategy in mask.items():
        c = columns.get(col)
        words = STRATEGY_WORDS.get(strategy, (strategy, strategy))
        ko.append(f"{c.label if c else col}: {words[0]}")
        en.append(f"{c.label_en if c else col}: {words[1]}")
    return "; ".join(ko), "; ".join(en)


def explain(task: Task, tf: TaskField, status: Status, rule: str | None = None) -> Explanation:
    """The explanation of one field's result. `rule`: the decision's rule of a field decided without a read
    (DENIED, CONSENT_REQUIRED), or of a mask a sharing agreement requires; any other field that was read was
    allowed by the task field's own rule."""
    f = tf.target
    if status is Status.DENIED or status is Status.CONSENT_REQUIRED:
        kind = CONSENT if status is Status.CONSENT_REQUIRED else DENY
        if kind == CONSENT:
            label, label_en = "정보주체의 동의가 있어야 열람할 수 있는 항목입니다", "shown only with the subject's consent"
        elif rule is not None and rule.startswith("jurisdiction"):
            label, label_en = "관할 구역 규칙: 대상자 주소지 관할 기관만 열람합니다", \
                "jurisdiction rule: only the subject's own region may read it"
        elif rule == NO_AGREEMENT:
            label, label_en = ("제공기관 협약 규칙: 제공기관이 이 사무에 이 항목을 제공하기로 한 협약이 없거나 끝났습니다",
                               "sharing agreement rule: the providing agency has no agreement in force to share it "
                               "for this task")
        elif rule == "task roles":
            label, label_en = "사무 권한 규칙: 이 사무를 수행할 역할이 아닙니다", "task roles: your roles do not perform this task"
        else:
            label, label_en = "기본 거부: 사무에 필요한 항목이 아닙니다", "deny by default: not in the task's field set"
        return Explanation(kind, rule or "", label, label_en,
                           f"사무 「{task.name}」 — {task.legal_basis}", f"task {task.name_en} — {task.legal_basis_en}")
    d = allowed_decision(tf)
    if status is Status.MASKED and rule is not None and rule.startswith(PROVIDER_MASK):
        strategy = rule[len(PROVIDER_MASK):].strip()
        words = STRATEGY_WORDS.get(strategy, (strategy, strategy))
        return Explanation(MASK, rule, f"가림 규칙: {words[0]}", f"masking rule: {words[1]}",
                           "제공기관 협약이 요구하는 가림: 사무의 규칙으로 풀 수 없습니다",
                           "a mask the providing agency's agreement requires: no task's rule lifts it")
    if status is Status.MASKED:
        mask = d.mask if d.mask is not None else tf.mask
        words = _strategy(mask, tf)
        if f.mask is not None and tf.mask == f.mask:
            s = SENSITIVITY_WORDS.get(f.sensitivity, (f.sensitivity, f.sensitivity))
            basis = (f"항목의 기본 가림({s[0]}): 사무 「{task.name}」에 전체 값을 열람할 법적 근거가 지정되어 있지 않습니다",
                     f"the field's default mask ({s[1]}): task {task.name_en} names no legal basis for the full value")
        else:
            basis = (f"사무 「{task.name}」의 항목 규칙: 이 사무의 처리에는 전체 값이 필요하지 않습니다 (최소 처리)",
                     f"task {task.name_en}'s field rule: the task does not need the full value (minimisation)")
        return Explanation(MASK, d.rule, f"가림 규칙: {words[0]}", f"masking rule: {words[1]}", *basis)
    if tf.full_value_basis is not None:
        if f.mask is not None:
            label = ("평소에는 가리는 항목이지만 이 사무에서는 법적 근거에 따라 전체 값을 보여 줍니다",
                     "usually masked; shown in full for this task under its legal basis")
        else:
            label = ("이 사무의 법적 근거에 따라 전체 값을 보여 줍니다", "shown in full under the task's legal basis")
        return Explanation(FULL_VALUE, d.rule, *label, tf.full_value_basis, tf.full_value_basis)
    return Explanation(FIELD_SET, d.rule, "사무에 필요한 항목", "required by the task",
                       task.legal_basis, task.legal_basis_en)
