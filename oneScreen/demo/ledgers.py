"""Deterministic synthetic Korean government ledgers for the oneScreen demo.

`generate()` writes six SQLite files, one per agency system, about one made-up
population of 5,200 residents living in 2,100 buildings spread over 27 real places
(법정동/리; see DONGS for which 10-digit codes were checked against the official list):

  mois_resident     resident                  주민등록표 (행정안전부)
  court_family      family_relation           가족관계등록부 (법원)
  molit_building    bldg_title, bldg_owner    건축물대장 표제부 / 소유자현황 (국토교통부)
  molit_land        land                      토지대장
  molit_vehicle     vehicle                   자동차등록원부
  nhis_eligibility  eligibility, dependant    건강보험 자격 / 피부양자 (국민건강보험공단)

The ledgers agree with each other the way real ones do: residents live in residential
buildings of molit_building, every building stands on a parcel of molit_land, family
relations are symmetric and derived from households, owners and insured people are
residents (or companies), and health-insurance dependants hang off an earning relative.
A resident's road_addr is the building's newPlatPlc with the unit inserted the official
way: '서울특별시 종로구 자하문로 45, 302호 (청운동)'; single-unit houses use newPlatPlc as is.

Everything comes from one `random.Random(seed)` consumed in a fixed order and a fixed
"today" (REF_DATE), so the same seed gives byte-identical files.  Nothing here reads the
clock, uuid, the global random or str hashes, and no set is ever iterated.
"""
from __future__ import annotations

import os
import random
import sqlite3
from datetime import date
from pathlib import Path
from types import SimpleNamespace as _Rec  # a plain record: people, households, buildings

DEMO_SEED: int = 20261126
GENERATOR_VERSION: str = "1"
LEDGER_FILES: dict[str, str] = {
    "mois_resident": "mois_resident.sqlite",
    "court_family": "court_family.sqlite",
    "molit_building": "molit_building.sqlite",
    "molit_land": "molit_land.sqlite",
    "molit_vehicle": "molit_vehicle.sqlite",
    "nhis_eligibility": "nhis_eligibility.sqlite",
}
STAMP_FILE = ".demo-version"
REF_DATE = date(2026, 11, 1)  # "today" in the synthetic world
REF_ORD = REF_DATE.toordinal()
N_RESIDENTS, N_BUILDINGS, N_EXTRA_PARCELS = 5200, 2100, 1200
YEAR = 365.25

# ---------------------------------------------------------------- reference data
# (법정동코드, 시도, 시군구, 읍면동[ 리], 도로명, kind, 대 공시지가 하한, 상한 원/㎡)
# kind S = Seoul, C = other city, R = rural 리 (farmland, forest, houses, factories).
# Codes marked * keep the real 5+5 structure but were not checked against the official file.
DONGS = (
    ("1111010100", "서울특별시", "종로구", "청운동", ("자하문로", "창의문로", "자하문로33길"), "S", 4_500_000, 9_000_000),
    ("1111011500", "서울특별시", "종로구", "사직동", ("사직로", "사직로8길", "경희궁1길"), "S", 6_000_000, 14_000_000),
    ("1168010100", "서울특별시", "강남구", "역삼동", ("테헤란로", "논현로", "역삼로", "언주로"), "S", 15_000_000, 45_000_000),
    ("1168010500", "서울특별시", "강남구", "삼성동", ("봉은사로", "영동대로", "삼성로", "테헤란로"), "S", 15_000_000, 40_000_000),
    ("1168010600", "서울특별시", "강남구", "대치동", ("도곡로", "선릉로", "남부순환로", "역삼로"), "S", 12_000_000, 30_000_000),
    ("1144012200", "서울특별시", "마포구", "합정동", ("양화로", "독막로", "월드컵로", "토정로"), "S", 6_000_000, 13_000_000),
    ("1144012000", "서울특별시", "마포구", "서교동", ("와우산로", "잔다리로", "홍익로", "양화로"), "S", 7_000_000, 16_000_000),
    ("1171010100", "서울특별시", "송파구", "잠실동", ("올림픽로", "백제고분로", "잠실로", "석촌호수로"), "S", 10_000_000, 25_000_000),
    ("1135010500", "서울특별시", "노원구", "상계동", ("동일로", "한글비석로", "노해로", "상계로"), "S", 3_000_000, 7_000_000),
    ("1162010100", "서울특별시", "관악구", "봉천동", ("관악로", "봉천로", "은천로", "남부순환로"), "S", 3_500_000, 8_000_000),
    ("1147010200", "서울특별시", "양천구", "목동", ("목동동로", "목동서로", "오목로", "안양천로"), "S", 5_000_000, 11_000_000),
    ("1165010700", "서울특별시", "서초구", "반포동", ("반포대로", "신반포로", "사평대로", "고무래로"), "S", 14_000_000, 35_000_000),
    ("1150010300", "서울특별시", "강서구", "화곡동", ("화곡로", "강서로", "곰달래로", "까치산로"), "S", 3_000_000, 7_000_000),
    ("2635010500", "부산광역시", "해운대구", "우동", ("해운대로", "센텀중앙로", "마린시티2로", "우동1로"), "C", 3_000_000, 12_000_000),
    ("2726010800", "대구광역시", "수성구", "범어동", ("달구벌대로", "동대구로", "범어로", "청수로"), "C", 2_500_000, 9_000_000),  # *
    ("2818510600", "인천광역시", "연수구", "송도동", ("컨벤시아대로", "인천타워대로", "송도과학로", "센트럴로"), "C", 2_500_000, 7_000_000),
    ("4111710500", "경기도", "수원시 영통구", "영통동", ("봉영로", "청명남로", "영통로", "매영로"), "C", 2_000_000, 5_000_000),
    ("4113510300", "경기도", "성남시 분당구", "정자동", ("정자일로", "불정로", "성남대로", "느티로"), "C", 5_000_000, 12_000_000),
    ("5111010600", "강원특별자치도", "춘천시", "효자동", ("효자로", "춘천로", "안마산로"), "C", 700_000, 2_500_000),  # *
    ("4617012700", "전라남도", "나주시", "빛가람동", ("빛가람로", "우정로", "그린로"), "C", 800_000, 2_000_000),  # *
    ("5011012200", "제주특별자치도", "제주시", "노형동", ("노연로", "1100로", "도령로", "연북로"), "C", 1_500_000, 4_000_000),  # *
    ("4617025021", "전라남도", "나주시", "남평읍 대교리", ("남평로", "대교길"), "R", 60_000, 200_000),  # *
    ("5111025021", "강원특별자치도", "춘천시", "신북읍 천전리", ("신북로", "영서로"), "R", 80_000, 250_000),  # *
    ("5011025321", "제주특별자치도", "제주시", "애월읍 애월리", ("애월해안로", "일주서로", "애월로"), "R", 150_000, 400_000),  # *
    ("4717025021", "경상북도", "안동시", "풍산읍 안교리", ("풍산태사로", "안교길"), "R", 50_000, 150_000),  # *
    ("4415025021", "충청남도", "공주시", "유구읍 석남리", ("유구로", "석남길"), "R", 50_000, 160_000),  # *
    ("4376025021", "충청북도", "괴산군", "괴산읍 동부리", ("괴산로", "동진천길"), "R", 50_000, 140_000),  # *
)
DONG_WEIGHT = {"S": 6, "C": 5, "R": 2}

SURNAMES = (("김", 215), ("이", 147), ("박", 84), ("최", 47), ("정", 43), ("강", 24), ("조", 21), ("윤", 21),
            ("장", 20), ("임", 17), ("한", 15), ("오", 15), ("서", 14), ("신", 14), ("권", 14), ("황", 14),
            ("안", 14), ("송", 13), ("류", 12), ("전", 11), ("홍", 11), ("고", 9), ("문", 9), ("양", 9),
            ("손", 9), ("배", 8), ("백", 7), ("허", 6), ("유", 6), ("남", 6), ("심", 5), ("노", 5), ("하", 5),
            ("곽", 4), ("성", 4), ("차", 4), ("주", 4), ("우", 4), ("구", 4), ("민", 3))
# (sex, era) -> first syllables, second syllables of a given name; era "old" = born before 1975
GIVEN_SYLLABLES = {
    ("남", "old"): ("영 정 성 상 동 재 종 광 병 용 진 경 철 기 명 문", "수 호 철 식 석 환 민 기 진 규 섭 훈 태 일 남 국"),
    ("남", "new"): ("민 서 도 준 지 현 우 건 시 예 주 하 승 유 태 은 재 성 윤", "준 우 윤 호 현 민 진 혁 원 빈 성 훈 영 서 율 후 찬"),
    ("여", "old"): ("영 정 미 경 순 숙 명 은 혜 선 현 옥 금 말 춘 정", "희 숙 자 순 미 옥 정 영 경 애 란 선 례 화 주 남"),
    ("여", "new"): ("서 지 하 수 민 예 윤 채 다 은 유 소 혜 아 가 나 연 주", "연 우 은 윤 아 원 린 희 진 영 현 서 빈 유 인 경 민"),
}
# mainPurpsCdNm, weight urban, weight rural, floors, basements, 대지면적 m², 건폐율 %, first year, layout
BUILDING_TYPES = (
    ("아파트", 14, 0, (10, 30), (1, 3), (2500, 9000), (12, 18), 1978, "apt"),
    ("다세대주택", 20, 0, (3, 5), (0, 1), (160, 400), (50, 60), 1985, "units"),
    ("다가구주택", 11, 6, (2, 3), (0, 1), (150, 350), (50, 60), 1990, "units"),
    ("단독주택", 14, 60, (1, 2), (0, 0), (120, 600), (30, 60), 1970, "house"),
    ("연립주택", 5, 0, (3, 4), (0, 1), (600, 2000), (30, 50), 1975, "units"),
    ("제1종근린생활시설", 11, 12, (1, 5), (0, 1), (150, 600), (50, 70), 1975, None),
    ("제2종근린생활시설", 9, 5, (2, 7), (0, 2), (200, 800), (50, 70), 1975, None),
    ("업무시설", 8, 0, (5, 25), (1, 6), (800, 4000), (40, 60), 1980, None),
    ("판매시설", 3, 2, (2, 8), (1, 3), (1500, 8000), (50, 70), 1985, None),
    ("교육연구시설", 2, 3, (2, 5), (0, 1), (3000, 12000), (20, 40), 1970, None),
    ("공장", 3, 12, (1, 3), (0, 0), (1500, 10000), (40, 70), 1975, None),
)
RESIDENTIAL = ("아파트", "다세대주택", "다가구주택", "단독주택", "연립주택")
STRUCTURES = {
    "아파트": ("철근콘크리트구조",) * 9 + ("철골철근콘크리트구조",),
    "단독주택": ("벽돌구조", "벽돌구조", "철근콘크리트구조", "목구조"),
    "업무시설": ("철골철근콘크리트구조", "철골구조", "철근콘크리트구조"),
    "판매시설": ("철골철근콘크리트구조", "철골구조", "일반철골구조"),
    "공장": ("일반철골구조", "일반철골구조", "철골구조"),
}
DEFAULT_STRUCTURES = ("철근콘크리트구조",) * 4 + ("벽돌구조",)
CORP_SHARE = {"업무시설": 0.8, "판매시설": 0.8, "교육연구시설": 0.9, "공장": 0.75,
              "제1종근린생활시설": 0.4, "제2종근린생활시설": 0.45}
NAME_WORDS = ("한빛", "대성", "삼익", "동아", "우성", "신성", "태영", "대림", "성원", "한양", "미래", "청솔",
              "소망", "은하", "새한", "보람", "한솔", "그린", "동양", "금호", "해뜰", "세종", "누리", "다온")
APT_BRANDS = ("현대", "래미안", "자이", "푸르지오", "아이파크", "e편한세상", "힐스테이트", "롯데캐슬", "주공", "한신")
CORP_STYLES = ("(주){}{}", "{}{}(주)", "주식회사 {}{}")
CORP_SUFFIXES = ("개발", "건설", "산업", "물산", "홀딩스", "유통", "정밀", "테크", "에너지", "자산관리", "식품", "물류")
CORP_OFFICES = ("110111", "110114", "134111", "131111", "180111", "170111", "120111", "160111", "230111", "284411")

# household kind -> weight, then weights over RESIDENTIAL for where such households live
HOUSEHOLD_KINDS = {
    "single": (33, (2, 4, 4, 2, 1)), "couple": (22, (4, 3, 2, 3, 1)), "nuclear": (30, (6, 3, 1, 2, 1)),
    "single_parent": (6, (3, 3, 3, 1, 1)), "with_parent": (4, (5, 2, 1, 3, 1)),
    "three_gen": (2, (3, 1, 1, 5, 1)), "siblings": (2, (2, 4, 4, 1, 1)), "roommates": (1, (1, 4, 5, 1, 1)),
}
# 지목 -> (pick weights for kind S, C, R), price factor vs 대, area range m²
LAND_CATEGORIES = {
    "대": ((35, 20, 5), 1.0, (100, 800)), "전": ((0, 20, 30), 0.15, (300, 5000)),
    "답": ((0, 15, 30), 0.12, (500, 6000)), "임야": ((0, 10, 22), 0.03, (1000, 60000)),
    "잡종지": ((15, 10, 4), 0.4, (200, 3000)), "도로": ((25, 15, 5), 0.3, (50, 800)),
    "공장용지": ((0, 0, 3), 0.5, (1000, 10000)), "주차장": ((25, 10, 1), 0.8, (200, 2000)),
}
# 차명, 차종, 배기량 choices (0 = EV), first model year, WMI, weight
VEHICLE_MODELS = (
    ("아반떼", "승용", (1598, 1591), 2000, "KMH", 12), ("쏘나타", "승용", (1999, 1598), 2000, "KMH", 11),
    ("그랜저", "승용", (2497, 3342, 2359), 2000, "KMH", 10), ("K5", "승용", (1999, 1598), 2010, "KNA", 7),
    ("K3", "승용", (1598, 1591), 2012, "KNA", 4), ("모닝", "승용", (998,), 2004, "KNA", 7),
    ("레이", "승용", (998,), 2011, "KNA", 4), ("스포티지", "승용", (1598, 1995), 2000, "KNA", 6),
    ("쏘렌토", "승용", (2151, 1598), 2002, "KNA", 6), ("싼타페", "승용", (2199, 2497), 2000, "KMH", 6),
    ("투싼", "승용", (1598, 1995), 2004, "KMH", 5), ("팰리세이드", "승용", (2199, 3778), 2019, "KMH", 4),
    ("코나", "승용", (1598, 0), 2017, "KMH", 3), ("제네시스 G80", "승용", (2497, 3470), 2016, "KMH", 4),
    ("SM6", "승용", (1618, 1997), 2016, "KNM", 2), ("QM6", "승용", (1997,), 2016, "KNM", 2),
    ("토레스", "승용", (1497,), 2022, "KPT", 2), ("티볼리", "승용", (1597,), 2015, "KPT", 2),
    ("아이오닉5", "승용", (0,), 2021, "KMH", 3), ("EV6", "승용", (0,), 2021, "KNA", 2),
    ("카니발", "승합", (2199, 3470), 2000, "KNA", 5), ("스타리아", "승합", (2199,), 2021, "KMH", 2),
    ("포터2", "화물", (2497,), 2004, "KMH", 5), ("봉고3", "화물", (2497,), 2004, "KNC", 4),
    ("엑시언트 트랙터", "특수", (12742,), 2013, "KMF", 1),
)
PLATE_HANGUL = "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주"
PLATE_RANGES = {"승용": (1, 69, 100, 699), "승합": (70, 79, 700, 799), "화물": (80, 97, 800, 979), "특수": (98, 99, 980, 997)}
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
VIN_YEARS = "ABCDEFGHJKLMNPRSTVWXY123456789"  # model-year code cycle starting 1980
RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
NHIS_RATE = 0.0719  # 건강보험료율; the employee pays half


# ---------------------------------------------------------------- small helpers
def _age(birth: date) -> int:
    return REF_DATE.year - birth.year - ((REF_DATE.month, REF_DATE.day) < (birth.month, birth.day))


def _years_after(d: date, years: float) -> date:
    return date.fromordinal(d.toordinal() + int(years * YEAR))


def _rdate(rng: random.Random, lo: date, hi: date) -> date:
    return date.fromordinal(rng.randint(min(lo, hi).toordinal(), hi.toordinal()))


def _round_sig(x: float, digits: int = 3) -> int:
    return int(round(x, digits - len(str(int(x)))))


def _rrn_check_digit(first12: str) -> int:
    return (11 - sum(int(c) * w for c, w in zip(first12, RRN_WEIGHTS)) % 11) % 10


def _other(sex: str) -> str:
    return "여" if sex == "남" else "남"


class _World:
    """State shared by the generation steps: the one rng and the uniqueness registries."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rrns: set[str] = set()
        self.name_births: set[tuple[str, date]] = set()
        self.used: set[tuple] = set()  # plates, VINs, phone numbers, parcel and road numbers, ...
        self.surnames = [s for s, _ in SURNAMES]
        self.surname_weights = [w for _, w in SURNAMES]
        self.residents: list[_Rec] = []
        self.households: list[_Rec] = []
        self.buildings: list[_Rec] = []

    def unique(self, kind: str, make):
        while True:
            value = make()
            if (kind, value) not in self.used:
                self.used.add((kind, value))
                return value

    def person(self, sex: str, birth: date, surname: str | None = None, resident: bool = True) -> _Rec:
        rng = self.rng
        surname = surname or rng.choices(self.surnames, self.surname_weights)[0]
        first, second = (s.split() for s in GIVEN_SYLLABLES[(sex, "old" if birth.year < 1975 else "new")])
        while True:
            a, b = rng.choice(first), rng.choice(second)
            name = surname + a + b
            if a != b and (not resident or (name, birth) not in self.name_births):
                break
        if resident:
            self.name_births.add((name, birth))
        g = (1 if sex == "남" else 2) + (2 if birth.year >= 2000 else 0)
        while True:
            body = f"{birth:%y%m%d}{g}{rng.randrange(100000):05d}"
            rrn = f"{body[:6]}-{body[6:]}{_rrn_check_digit(body)}"
            if rrn not in self.rrns:
                self.rrns.add(rrn)
                break
        return _Rec(rrn=rrn, name=name, surname=surname, sex=sex, birth=birth, resident=resident,
                    father=None, mother=None, spouse=None, children=[], hh=None, rel=None)

    def adult(self, sex: str, age: int, surname: str | None = None) -> _Rec:
        hi = REF_ORD - int(age * YEAR)
        return self.person(sex, date.fromordinal(self.rng.randint(hi - 364, hi)), surname)

    def partner(self, p: _Rec, resident: bool = False, surname: str | None = None) -> _Rec:
        """An opposite-sex partner of about p's age; non-residents are absent or deceased parents."""
        birth = date.fromordinal(p.birth.toordinal() + self.rng.randint(-4 * 365, 4 * 365))
        return self.person(_other(p.sex), min(birth, _years_after(REF_DATE, -20)), surname, resident)

    def couple(self, head_age: int) -> tuple[_Rec, _Rec]:
        head = self.adult("남" if self.rng.random() < 0.8 else "여", head_age)
        spouse = self.partner(head, resident=True)
        head.spouse, spouse.spouse = spouse, head
        return head, spouse

    @staticmethod
    def link_child(kid: _Rec, father: _Rec | None, mother: _Rec | None) -> None:
        kid.father, kid.mother = father, mother
        for parent in (father, mother):
            if parent is not None:
                parent.children.append(kid)

    def children(self, father: _Rec | None, mother: _Rec | None, n: int) -> list[_Rec]:
        """Up to n children born when their mother (else father) was 22..34, spaced >= ~1 year."""
        rng, base = self.rng, mother or father
        room = REF_ORD - base.birth.toordinal()
        if n == 0 or room < 22 * 365:
            return []
        t = base.birth.toordinal() + rng.randint(22 * 365, min(34 * 365, room))
        kids = []
        for _ in range(n):
            if t > REF_ORD:
                break
            kid = self.person(rng.choice("남여"), date.fromordinal(t), father.surname if father else None)
            self.link_child(kid, father, mother)
            kids.append(kid)
            t += rng.randint(400, 5 * 365)
        return kids


# ---------------------------------------------------------------- buildings
def _make_buildings(w: _World) -> None:
    rng = w.rng
    dong_weights = [DONG_WEIGHT[d[5]] for d in DONGS]
    complexes: dict[str, list] = {}  # 법정동코드 -> [[complex name, next 동 number], ...]
    for _ in range(N_BUILDINGS):
        code, sido, sgg, emd, roads, kind, _, _ = dong = rng.choices(DONGS, dong_weights)[0]
        t = rng.choices(BUILDING_TYPES, [bt[2 if kind == "R" else 1] for bt in BUILDING_TYPES])[0]
        purpose, _, _, floors_r, base_r, plat_r, bc_r, first_year, layout = t
        _, _, bun, ji = w.unique("parcel", lambda: (code, "1", rng.randint(1, 999),
                                                    rng.choice((0, 0, rng.randint(1, 60)))))
        road = rng.choice(roads)
        road_no = w.unique("road", lambda: (sgg, road, rng.randint(1, 420)))[2]
        floors, basements = rng.randint(*floors_r), rng.randint(*base_r)
        lines = rng.randint(2, 4) if layout in ("apt", "units") else 1
        if purpose == "연립주택":
            lines = rng.randint(3, 6)
        stem = emd.split()[0][:-1] if len(emd.split()[0]) > 2 else sgg.split()[-1][:-1]
        name, apt_dong, note = _building_name(rng, purpose, stem, code, complexes), None, ""
        if layout == "apt":
            apt_dong = name.rsplit(" ", 1)[1][:-1]
        if kind != "R":
            note = f"({emd}, {name.rsplit(' ', 1)[0]})" if layout == "apt" else f"({emd})"
        base = f"{sido} {sgg} {emd.split()[0] if kind == 'R' else ''} {road} {road_no}".replace("  ", " ")
        plat = round(rng.uniform(*plat_r), 2)
        arch = round(plat * rng.uniform(*bc_r) / 100, 2)
        above = arch * floors * rng.uniform(0.85, 1.0)
        total = round(above + arch * basements * rng.uniform(0.8, 1.2), 2)
        apr = _rdate(rng, date(max(first_year, 1970), 1, 1), date(2025, 12, 31))
        w.buildings.append(_Rec(
            pk=w.unique("pk", lambda: f"{code[:5]}-1{rng.randrange(10**8):08d}"), dong=dong, purpose=purpose,
            plat_plc=f"{sido} {sgg} {emd} {bun}-{ji}번지" if ji else f"{sido} {sgg} {emd} {bun}번지",
            base=base, note=note, new_plat=f"{base} {note}".strip(), bun=bun, ji=ji, name=name,
            structure=rng.choice(STRUCTURES.get(purpose, DEFAULT_STRUCTURES)), layout=layout,
            plat=plat, arch=arch, total=total, bc=round(arch / plat * 100, 2), vl=round(above / plat * 100, 2),
            floors=floors, basements=basements, lines=lines, apt_dong=apt_dong,
            hhld=(floors * lines if layout in ("apt", "units") else 1 if layout == "house" else 0),
            apr=apr, pnu=f"{code}1{bun:04d}{ji:04d}", free=None, households=[], owners=[]))


def _building_name(rng, purpose: str, stem: str, code: str, complexes: dict) -> str:
    word = rng.choice(NAME_WORDS)
    if purpose == "아파트":
        mine = complexes.setdefault(code, [])
        if not mine or rng.random() < 0.3:
            mine.append([f"{stem}{rng.choice(APT_BRANDS)}아파트", 101])
        cx = rng.choice(mine)
        cx[1] += 1
        return f"{cx[0]} {cx[1] - 1}동"
    options = {
        "다세대주택": (f"{word}빌라", f"{word}하우스", f"{word}빌", ""), "다가구주택": ("", "", f"{word}하우스"),
        "단독주택": ("",), "연립주택": (f"{word}연립", f"{word}맨션"),
        "제1종근린생활시설": (f"{word}빌딩", f"{word}프라자", ""), "제2종근린생활시설": (f"{word}빌딩", f"{word}타워", ""),
        "업무시설": (f"{word}빌딩", f"{word}타워", f"{word}센터"), "판매시설": (f"{word}마트", f"{word}쇼핑센터"),
        "교육연구시설": (f"{stem}초등학교", f"{stem}중학교", f"{word}학원"),
        "공장": (f"{word}산업 제{rng.randint(1, 3)}공장", f"{word}정밀 공장"),
    }
    return rng.choice(options[purpose])


# ---------------------------------------------------------------- people and households
def _make_household(w: _World, kind: str) -> list[tuple[_Rec, str]]:
    """Members of one household as (person, relation to head); the head comes first."""
    rng = w.rng
    if kind == "single":
        age = rng.choice((rng.randint(20, 39), rng.randint(40, 64), rng.randint(65, 92)))
        return [(w.adult("여" if age >= 70 and rng.random() < 0.7 else rng.choice("남여"), age), "본인")]
    if kind in ("couple", "nuclear", "with_parent"):
        lo, hi = {"couple": (25, 88), "nuclear": (30, 62), "with_parent": (35, 60)}[kind]
        head, spouse = w.couple(rng.randint(lo, hi))
        father, mother = (head, spouse) if head.sex == "남" else (spouse, head)
        if kind == "nuclear":
            n = rng.choices((1, 2, 3), (40, 45, 15))[0]
        else:
            n = rng.randint(0, 2) if kind == "with_parent" else 0
        members = [(head, "본인"), (spouse, "배우자")] + [(k, "자녀") for k in w.children(father, mother, n)]
        if kind == "with_parent":
            members.append(_parent_moving_in(w, head))
        return members
    if kind == "single_parent":
        head = w.adult("여" if rng.random() < 0.75 else "남", rng.randint(30, 55))
        other = w.partner(head) if rng.random() < 0.4 else None
        father, mother = (head, other) if head.sex == "남" else (other, head)
        return [(head, "본인")] + [(k, "자녀") for k in w.children(father, mother, rng.choice((1, 1, 2)))]
    if kind == "three_gen":
        age = rng.randint(62, 85)
        if rng.random() < 0.6:
            head, spouse = w.couple(age)
            members = [(head, "본인"), (spouse, "배우자")]
        else:
            head, spouse = w.adult(rng.choice("남여"), age), None
            members = [(head, "본인")]
        father, mother = (head, spouse) if head.sex == "남" else (spouse, head)
        child = w.children(father, mother, 1)[0]
        other = w.partner(child) if rng.random() < 0.4 else None
        father, mother = (child, other) if child.sex == "남" else (other, child)
        return members + [(child, "자녀")] + [(k, "손자녀") for k in w.children(father, mother, rng.randint(1, 2))]
    head = w.adult(rng.choice("남여"), rng.randint(20, 45 if kind == "siblings" else 35))
    if kind == "siblings":
        age, gap = _age(head.birth), rng.randint(1, 6)
        sibling_age = age + gap if age < 26 or rng.random() < 0.5 else age - gap
        return [(head, "본인"), (w.adult(rng.choice("남여"), sibling_age, head.surname), "형제자매")]
    return [(head, "본인"), (w.adult(rng.choice("남여"), rng.randint(20, 35)), "동거인")]


def _parent_moving_in(w: _World, child: _Rec) -> tuple[_Rec, str]:
    """An elderly parent of the head who lives with them; the other parent is deceased or absent."""
    rng = w.rng
    sex = "여" if rng.random() < 0.65 else "남"
    gap = rng.randint(24 * 365, min(36, 95 - _age(child.birth)) * 365)
    parent = w.person(sex, date.fromordinal(child.birth.toordinal() - gap), child.surname if sex == "남" else None)
    other = w.partner(parent, surname=child.surname if sex == "여" else None) if rng.random() < 0.4 else None
    father, mother = (parent, other) if sex == "남" else (other, parent)
    w.link_child(child, father, mother)
    return parent, "부" if sex == "남" else "모"


def _pick_home(w: _World, kind: str) -> tuple[_Rec, str]:
    rng = w.rng
    by_type = w.by_type
    for _ in range(60):
        b = rng.choice(by_type[rng.choices(RESIDENTIAL, HOUSEHOLD_KINDS[kind][1])[0]])
        if b.free is None:
            prefix = f"{b.apt_dong}동 " if b.layout == "apt" else ""
            b.free = [""] if b.layout == "house" else [
                f"{prefix}{f}{n:02d}호" for f in range(1, b.floors + 1) for n in range(1, b.lines + 1)]
            rng.shuffle(b.free)
        if b.free:
            return b, b.free.pop()
    raise RuntimeError("no free dwelling left")  # cannot happen with the configured sizes


def _settle(w: _World, kind: str, members: list[tuple[_Rec, str]]) -> None:
    rng = w.rng
    bldg, unit = _pick_home(w, kind)
    head = members[0][0]
    hh = _Rec(hid=w.unique("hshld", lambda: f"H{rng.randrange(10**8, 10**9)}"), bldg=bldg, members=[],
              road_addr=f"{bldg.base}, {unit} {bldg.note}".strip() if unit else bldg.new_plat,
              mvin=_rdate(rng, max(bldg.apr, _years_after(head.birth, 19)), REF_DATE), medical_aid=False)
    bldg.households.append(hh)
    w.households.append(hh)
    for p, rel in members:
        p.hh, p.rel = hh, rel
        p.mvin = max(hh.mvin, p.birth)
        if rel != "본인" and _age(p.birth) >= 20 and rng.random() < 0.08:
            p.mvin = _rdate(rng, p.mvin, REF_DATE)
        p.phone = None if _age(p.birth) < 10 else w.unique(
            "phone", lambda: f"010-{rng.randint(2000, 9999)}-{rng.randint(0, 9999):04d}")
        hh.members.append(p)
        w.residents.append(p)


def _make_population(w: _World) -> None:
    rng = w.rng
    w.by_type = {t: [b for b in w.buildings if b.purpose == t] for t in RESIDENTIAL}
    kinds, weights = list(HOUSEHOLD_KINDS), [v[0] for v in HOUSEHOLD_KINDS.values()]
    while len(w.residents) < N_RESIDENTS:
        kind = "single" if N_RESIDENTS - len(w.residents) < 5 else rng.choices(kinds, weights)[0]
        _settle(w, kind, _make_household(w, kind))


def _link_adult_children(w: _World) -> None:
    """Elderly heads whose children have left home get them back from other households."""
    rng = w.rng
    pool: dict[tuple, list[_Rec]] = {}
    for p in w.residents:
        if p.rel in ("본인", "배우자") and 22 <= _age(p.birth) <= 62 and p.father is None and p.mother is None:
            pool.setdefault((p.surname, p.birth.year), []).append(p)
            pool.setdefault((None, p.birth.year), []).append(p)
    for hh in w.households:
        head = hh.members[0]
        if _age(head.birth) < 55 or head.children or any(p.rel in ("자녀", "손자녀") for p in hh.members):
            continue
        if rng.random() >= 0.65:
            continue
        father, mother = (head, head.spouse) if head.sex == "남" else (head.spouse, head)
        surname = father.surname if father else None
        youngest = max(x.birth.year for x in (father, mother) if x)
        oldest = min(x.birth.year for x in (father, mother) if x)
        years = list(range(youngest + 22, min(oldest + 42, REF_DATE.year - 22) + 1))
        rng.shuffle(years)
        found: list[_Rec] = []
        want = rng.choice((1, 1, 2, 2, 3))
        for y in years:
            for c in pool.get((surname, y), ()):
                if c.father is None and c.mother is None and c.hh is not hh:
                    surname = c.surname
                    found.append(c)
                    break
            if len(found) == want:
                break
        if not found:
            continue
        if father is None and rng.random() < 0.5:
            birth = _rdate(rng, _years_after(mother.birth, -5), _years_after(mother.birth, 2))
            father = w.person("남", birth, surname, resident=False)
        elif mother is None and rng.random() < 0.5:
            mother = w.partner(father)
        for c in found:
            w.link_child(c, father, mother)


# ---------------------------------------------------------------- ownership
def _make_corporations(w: _World) -> tuple[list, list]:
    rng = w.rng

    def corp(name_fn):
        name = w.unique("corp", name_fn)
        reg = w.unique("corpno", lambda: f"{rng.choice(CORP_OFFICES)}-{rng.randrange(10**7):07d}")
        while reg in w.rrns:  # a corporate number must never look like a resident's rrn
            reg = w.unique("corpno", lambda: f"{rng.choice(CORP_OFFICES)}-{rng.randrange(10**7):07d}")
        return reg, name
    companies = [corp(lambda: rng.choice(CORP_STYLES).format(rng.choice(NAME_WORDS), rng.choice(CORP_SUFFIXES)))
                 for _ in range(40)]
    schools = [corp(lambda: f"학교법인 {rng.choice(NAME_WORDS)}학원") for _ in range(8)]
    return companies, schools


def _assign_building_owners(w: _World, companies: list, schools: list) -> None:
    rng = w.rng
    adults = [p for p in w.residents if _age(p.birth) >= 35]
    landlords = rng.sample(adults, len(adults) // 2)
    held: dict[str, int] = {}

    def add(b, p, since):
        owners = [p] + ([p.spouse] if p.spouse and p.spouse.resident and rng.random() < 0.2 else [])
        if any(held.get(o.rrn, 0) >= 3 for o in owners):
            owners = owners[:1]
            if held.get(p.rrn, 0) >= 3:
                return False
        for o in owners:
            held[o.rrn] = held.get(o.rrn, 0) + 1
            since_o = min(max(since, _years_after(o.birth, 20), b.apr), REF_DATE)
            b.owners.append((o.rrn, o.name, "1/2" if len(owners) == 2 else "1/1", since_o))
        return True

    for b in w.buildings:
        if b.purpose in CORP_SHARE and rng.random() < CORP_SHARE[b.purpose]:
            reg, name = rng.choice(schools if b.purpose == "교육연구시설" else companies)
            b.owners.append((reg, name, "1/1", _rdate(rng, b.apr, REF_DATE)))
            continue
        single_owner = b.purpose not in ("아파트", "다세대주택", "연립주택")
        for hh in b.households:
            if rng.random() < (0.5 if single_owner else 0.3):
                head = hh.members[0]
                add(b, head, _rdate(rng, _years_after(hh.mvin, -0.25), hh.mvin))
            if single_owner:
                break
        if not b.owners or (not single_owner and rng.random() < 0.15):
            for _ in range(4):
                p = rng.choice(landlords)
                if add(b, p, _rdate(rng, max(b.apr, _years_after(p.birth, 25)), REF_DATE)):
                    break
        if not b.owners:
            reg, name = rng.choice(companies)
            b.owners.append((reg, name, "1/1", _rdate(rng, b.apr, REF_DATE)))
    w.holdings = held


def _make_land(w: _World, companies: list) -> list[tuple]:
    rng = w.rng
    rows = []
    for b in w.buildings:
        code, sido, sgg, emd, _, _, lo, hi = b.dong
        reg, name, _, since = b.owners[0]
        rows.append((b.pnu, f"{sido} {sgg} {emd}", "대", b.plat, _round_sig(rng.randint(lo, hi)), reg, name,
                     since.isoformat()))
    holders = rng.sample([p for p in w.residents if _age(p.birth) >= 35], 650)
    rural = [d for d in DONGS if d[5] == "R"]
    urban = [d for d in DONGS if d[5] != "R"]
    cats = list(LAND_CATEGORIES)
    for _ in range(N_EXTRA_PARCELS):
        code, sido, sgg, emd, _, kind, lo, hi = dong = rng.choice(rural if rng.random() < 0.7 else urban)
        col = "SCR".index(kind)
        cat = rng.choices(cats, [LAND_CATEGORIES[c][0][col] for c in cats])[0]
        _, factor, area_r = LAND_CATEGORIES[cat]
        mountain = "2" if cat == "임야" and rng.random() < 0.7 else "1"
        _, _, bun, ji = w.unique("parcel", lambda: (code, mountain, rng.randint(1, 1500),
                                                    rng.choice((0, rng.randint(1, 40)))))
        price = max(500, _round_sig(rng.randint(lo, hi) * factor * rng.uniform(0.7, 1.3)))
        if rng.random() < 0.12:
            (reg, name), since = rng.choice(companies), _rdate(rng, date(1990, 1, 1), REF_DATE)
        else:
            p = rng.choice(holders)
            reg, name, since = p.rrn, p.name, _rdate(rng, max(date(1975, 1, 1), _years_after(p.birth, 20)), REF_DATE)
            w.holdings[p.rrn] = w.holdings.get(p.rrn, 0) + 1
        rows.append((f"{code}{mountain}{bun:04d}{ji:04d}", f"{sido} {sgg} {emd}", cat,
                     round(rng.uniform(*area_r), 2), price, reg, name, since.isoformat()))
    return rows


def _make_vehicles(w: _World) -> list[tuple]:
    rng = w.rng
    rows = []
    model_weights = [m[5] for m in VEHICLE_MODELS]
    for p in w.residents:
        age = _age(p.birth)
        if age < 19:
            continue
        weights = (80, 18, 2, 0) if age < 25 else (70, 27, 3, 0) if age >= 70 else (42, 43, 12, 3)
        for _ in range(rng.choices((0, 1, 2, 3), weights)[0]):
            cnm, asort, displacements, since, wmi, _ = rng.choices(VEHICLE_MODELS, model_weights)[0]
            lo = min(2026, max(since, 2000, p.birth.year + 19))
            prye = max(rng.randint(lo, 2026), rng.randint(lo, 2026))
            first = _rdate(rng, date(prye - 1, 7, 1), min(date(prye, 12, 31), REF_DATE))
            r = PLATE_RANGES[asort]
            plate = w.unique("plate", lambda: (f"{rng.randint(r[2], r[3])}" if first.year >= 2019 else
                                               f"{rng.randint(r[0], r[1]):02d}")
                             + rng.choice(PLATE_HANGUL) + f"{rng.randrange(1, 10000):04d}")
            vin = w.unique("vin", lambda: wmi + "".join(rng.choice(VIN_CHARS) for _ in range(5))
                           + str(rng.randint(0, 9)) + VIN_YEARS[(prye - 1980) % 30] + rng.choice("UAGJ")
                           + f"{rng.randrange(10**6):06d}")
            rows.append((plate, p.rrn, cnm, asort, prye, rng.choice(displacements), first.isoformat(), vin))
    return rows


# ---------------------------------------------------------------- health insurance
def _make_nhis(w: _World) -> tuple[list[tuple], list[tuple]]:
    rng = w.rng
    workplaces = [rng.choice(CORP_STYLES).format(rng.choice(NAME_WORDS), rng.choice(CORP_SUFFIXES)) for _ in range(50)]
    workplaces += [f"{d[2].split()[-1]}청" for d in DONGS[:14]]  # 구청/시청
    status: dict[str, list] = {}  # rrn -> [type, acqs_de, premium, workplace, insurer rrn]
    job: dict[str, str | None] = {}
    for hh in w.households:
        elderly_alone = len(hh.members) == 1 and _age(hh.members[0].birth) >= 65
        hh.medical_aid = rng.random() < (0.12 if elderly_alone else 0.025)
    for p in w.residents:
        age = _age(p.birth)
        prob = ((0.72 if p.sex == "남" else 0.55) * (0.5 if age < 25 else 1) if 19 <= age <= 64
                else (0.25 if p.sex == "남" else 0.12) if 65 <= age <= 74 else 0)
        r = rng.random()
        job[p.rrn] = "employee" if r < prob * 0.78 else "self" if r < prob else None
        if p.hh.medical_aid:
            since = _rdate(rng, max(p.birth, _years_after(REF_DATE, -15)), REF_DATE)
            status[p.rrn] = ["의료급여수급권자", since, 0, None, None]
        elif job[p.rrn] == "employee":
            since = _rdate(rng, max(_years_after(p.birth, 20), _years_after(REF_DATE, -25)), REF_DATE)
            salary = rng.triangular(2_200_000, 9_500_000, 3_500_000)
            premium = int(round(salary * NHIS_RATE / 2 / 10)) * 10
            status[p.rrn] = ["직장가입자", since, premium, rng.choice(workplaces), None]
    deps: dict[str, list] = {}
    for p in w.residents:
        if p.rrn in status:
            continue
        insurer = rel = None
        if job[p.rrn] is None:
            candidates = [(p.spouse, "배우자"), (p.father, "자녀"), (p.mother, "자녀")]
            candidates += [(c, "부" if p.sex == "남" else "모") for c in p.children]  # p is the insurer's 부/모
            candidates.sort(key=lambda c: c[0] is None or c[0].hh is not p.hh)  # stable: same household first
            for q, r in candidates:
                if q is not None and q.resident and status.get(q.rrn, [None])[0] == "직장가입자":
                    insurer, rel = q, r
                    break
        if insurer is not None:
            status[p.rrn] = ["피부양자", max(status[insurer.rrn][1], p.birth), 0, None, insurer.rrn]
            deps.setdefault(insurer.rrn, []).append((p.rrn, p.name, rel))
        else:
            lo = max(_years_after(p.birth, 19), _years_after(REF_DATE, -20))
            status[p.rrn] = ["지역가입자", p.birth if _age(p.birth) < 19 else _rdate(rng, lo, REF_DATE), None, None, None]
    for hh in w.households:  # one 지역 payer per household, the first 지역 member
        payer_done = False
        for p in hh.members:
            s = status[p.rrn]
            if s[0] == "지역가입자":
                s[2] = 0 if payer_done else rng.randrange(1500, 20000) * 10 + 15000 * w.holdings.get(p.rrn, 0)
                payer_done = True
    missing_pool = [p for p in w.residents if p.rrn not in deps]
    missing = {p.rrn for p in rng.sample(missing_pool, round(N_RESIDENTS * 0.01))}
    elig, dep_rows = [], []
    for p in w.residents:
        kept = [d for d in deps.get(p.rrn, ()) if d[0] not in missing]
        dep_rows += [(p.rrn, *d) for d in kept]
        if p.rrn not in missing:
            t, acqs, prm, wp, ins = status[p.rrn]
            elig.append((p.rrn, t, acqs.isoformat(), prm, wp, ins, len(kept)))
    return elig, dep_rows


# ---------------------------------------------------------------- SQLite output
SCHEMAS = {
    "mois_resident": (
        "CREATE TABLE resident (rrn TEXT PRIMARY KEY, name TEXT, birth_date TEXT, sex TEXT, road_addr TEXT, "
        "legal_dong_cd TEXT, mvin_de TEXT, hshld_id TEXT, hshld_rel TEXT, mbl_telno TEXT, mgm_bldrgst_pk TEXT)",
        "CREATE INDEX ix_resident_hshld ON resident (hshld_id)",
        "CREATE INDEX ix_resident_name_birth ON resident (name, birth_date)",
        "CREATE INDEX ix_resident_bldg ON resident (mgm_bldrgst_pk)"),
    "court_family": (
        "CREATE TABLE family_relation (rrn TEXT, rel_type TEXT, rel_rrn TEXT, rel_name TEXT, rel_birth_date TEXT)",
        "CREATE INDEX ix_family_rrn ON family_relation (rrn)"),
    "molit_building": (
        "CREATE TABLE bldg_title (mgmBldrgstPk TEXT PRIMARY KEY, platPlc TEXT, newPlatPlc TEXT, sigunguCd TEXT, "
        "bjdongCd TEXT, bun TEXT, ji TEXT, bldNm TEXT, mainPurpsCdNm TEXT, strctCdNm TEXT, platArea REAL, "
        "archArea REAL, totArea REAL, bcRat REAL, vlRat REAL, grndFlrCnt INTEGER, ugrndFlrCnt INTEGER, "
        "hhldCnt INTEGER, useAprDay TEXT, pnu TEXT)",
        "CREATE TABLE bldg_owner (mgmBldrgstPk TEXT, owner_rrn TEXT, owner_name TEXT, share TEXT, own_chg_de TEXT)",
        "CREATE INDEX ix_bldg_pnu ON bldg_title (pnu)",
        "CREATE INDEX ix_bldg_newplatplc ON bldg_title (newPlatPlc)",
        "CREATE INDEX ix_bldg_owner_rrn ON bldg_owner (owner_rrn)"),
    "molit_land": (
        "CREATE TABLE land (pnu TEXT PRIMARY KEY, ldCodeNm TEXT, lndcgrCodeNm TEXT, lndpclAr REAL, "
        "pblntfPclnd INTEGER, owner_rrn TEXT, owner_name TEXT, ownshipChgDe TEXT)",
        "CREATE INDEX ix_land_owner_rrn ON land (owner_rrn)"),
    "molit_vehicle": (
        "CREATE TABLE vehicle (vhrNo TEXT PRIMARY KEY, owner_rrn TEXT, cnm TEXT, vhctyAsortNm TEXT, prye INTEGER, "
        "dsplvl INTEGER, frstRegistDe TEXT, vin TEXT)",
        "CREATE INDEX ix_vehicle_owner ON vehicle (owner_rrn)"),
    "nhis_eligibility": (
        "CREATE TABLE eligibility (rrn TEXT PRIMARY KEY, insured_type TEXT, acqs_de TEXT, mthly_prm INTEGER, "
        "workplace_nm TEXT, insurer_rrn TEXT, dependant_cnt INTEGER)",
        "CREATE TABLE dependant (insurer_rrn TEXT, dep_rrn TEXT, dep_name TEXT, dep_rel TEXT)",
        "CREATE INDEX ix_dependant_insurer ON dependant (insurer_rrn)"),
}


def _write_sqlite(path: Path, ddl: tuple[str, ...], tables: list[tuple[str, list[tuple]]]) -> None:
    """Write one ledger to a fresh temp file next to `path`, then atomically move it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
        leftover.unlink(missing_ok=True)
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute("PRAGMA page_size=4096")
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("BEGIN")
        for stmt in ddl:
            con.execute(stmt)
        for table, rows in tables:
            if rows:
                con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
        con.execute("COMMIT")
        con.close()
        os.replace(tmp, path)
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise


def _ledger_rows(seed: int) -> dict[str, list[tuple[str, list[tuple]]]]:
    w = _World(seed)
    _make_buildings(w)
    _make_population(w)
    _link_adult_children(w)
    companies, schools = _make_corporations(w)
    _assign_building_owners(w, companies, schools)
    land = _make_land(w, companies)
    vehicles = _make_vehicles(w)
    eligibility, dependants = _make_nhis(w)
    residents = [(p.rrn, p.name, p.birth.isoformat(), p.sex, p.hh.road_addr, p.hh.bldg.dong[0], p.mvin.isoformat(),
                  p.hh.hid, p.rel, p.phone, p.hh.bldg.pk) for p in w.residents]
    family = []
    for p in w.residents:
        links = [("부", p.father), ("모", p.mother), ("배우자", p.spouse)]
        links += [("자녀", c) for c in sorted(p.children, key=lambda c: (c.birth, c.rrn))]
        family += [(p.rrn, rel, q.rrn, q.name, q.birth.isoformat()) for rel, q in links if q is not None]
    titles = [(b.pk, b.plat_plc, b.new_plat, b.dong[0][:5], b.dong[0][5:], f"{b.bun:04d}", f"{b.ji:04d}", b.name,
               b.purpose, b.structure, b.plat, b.arch, b.total, b.bc, b.vl, b.floors, b.basements, b.hhld,
               f"{b.apr:%Y%m%d}", b.pnu) for b in w.buildings]
    owners = [(b.pk, reg, name, share, since.isoformat()) for b in w.buildings for reg, name, share, since in b.owners]
    return {
        "mois_resident": [("resident", residents)],
        "court_family": [("family_relation", family)],
        "molit_building": [("bldg_title", titles), ("bldg_owner", owners)],
        "molit_land": [("land", land)],
        "molit_vehicle": [("vehicle", vehicles)],
        "nhis_eligibility": [("eligibility", eligibility), ("dependant", dependants)],
    }


def _read_stamp(stamp: Path) -> str | None:
    try:
        return stamp.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def generate(dest: Path, seed: int = DEMO_SEED) -> dict[str, Path]:
    """Write all six files into dest (created if missing). Deterministic: same seed -> byte-identical files.

    Each file is written to a temp name in dest and then os.replace'd, so a crash never leaves a
    half-written file under its final name.  The stamp file is removed first and rewritten last
    (only for the default seed), so an interrupted run is regenerated by the next ensure().
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    stamp = dest / STAMP_FILE
    stamp.unlink(missing_ok=True)
    rows = _ledger_rows(seed)
    paths = {}
    for name, file_name in LEDGER_FILES.items():
        paths[name] = dest / file_name
        _write_sqlite(paths[name], SCHEMAS[name], rows[name])
    if seed == DEMO_SEED:
        tmp = dest / f".{STAMP_FILE}.{os.getpid()}.tmp"
        tmp.write_text(GENERATOR_VERSION + "\n", encoding="utf-8")
        os.replace(tmp, stamp)
    return paths


def ensure(dest: Path) -> dict[str, Path]:
    """Generate only if any file is missing or dest/'.demo-version' doesn't match GENERATOR_VERSION; return paths."""
    dest = Path(dest)
    paths = {name: dest / file_name for name, file_name in LEDGER_FILES.items()}
    if all(p.is_file() for p in paths.values()) and _read_stamp(dest / STAMP_FILE) == GENERATOR_VERSION:
        return paths
    return generate(dest)
