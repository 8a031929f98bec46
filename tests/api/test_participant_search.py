"""Finding a participant by name, birth date or case number, and by phone however it is written."""

from datetime import date

from domain.search import Person, duplicate_reason, parse


async def test_find_by_name_birth_date_case_number_and_phone(stack):
    mine = await stack.enroll(
        given_name="Josefina",
        family_name="Abernathy-Quist",
        date_of_birth="1979-02-03",
        phone="+1 (555) 555-0177",
        case_numbers=[{"system": "probation", "value": "PB-77-1203"}],
    )
    other = await stack.enroll(
        given_name="Josef", family_name="Brandt", date_of_birth="1990-06-30", phone=None, case_numbers=[]
    )

    async def found(**params) -> set[str]:
        response = await stack.http.get("/participants", params=params, headers=stack.auth("staff"))
        assert response.status_code == 200, response.text
        return {p["id"] for p in response.json()["items"]}

    assert await found(q="abernathy") == {mine["id"]}
    assert await found(q="josef") >= {mine["id"], other["id"]}
    assert await found(q="Josef Brandt") == {other["id"]}
    assert await found(q="1979-02-03") == {mine["id"]} == await found(q="02/03/1979")
    assert await found(q="PB-77-1203") == {mine["id"]}
    assert await found(q="100%_") == set()  # LIKE wildcards are text, not patterns
    assert await found(date_of_birth="1990-06-30") == {other["id"]}
    assert await found(phone="555.555.0177") == {mine["id"]}
    short = await stack.http.get("/participants", params={"phone": "0177"}, headers=stack.auth("staff"))
    assert short.status_code == 422 and "7 digits" in short.json()["detail"]


def test_likely_duplicates():
    new = Person("José", "Lima", date(1980, 1, 2), "555-555-0100")
    assert duplicate_reason(new, Person("jose", "LIMA", date(1980, 1, 2), None)) == "same name and date of birth"
    assert duplicate_reason(new, Person("Ana", "Other", date(1970, 1, 1), "+1 555 555 0100")) == "same phone number"
    assert duplicate_reason(new, Person("José", "Lima", date(1981, 1, 2), "555-555-0199")) is None
    assert duplicate_reason(Person("A", "B", None, "12"), Person("C", "D", None, "12")) is None
    assert parse("03/14/1987").birth_date == date(1987, 3, 14) and parse("Lima, Ana").words == ("Lima", "Ana")
