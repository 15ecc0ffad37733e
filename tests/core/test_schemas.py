"""Input models: lengths hold for the value as sent; only text is trimmed, never a secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from touchstone.appraisal.schemas import ItemCreate
from touchstone.identity.schemas import PasswordChange, UserCreate
from touchstone.statements.schemas import PasswordIn, RuleIn


def _user(**fields: object) -> dict[str, object]:
    return {"email": "ann@example.com", "full_name": "Ann", "role": "viewer", **fields}


def test_names_are_trimmed_after_the_length_check() -> None:
    assert UserCreate.model_validate(_user(full_name="  Ann Lee \t")).full_name == "Ann Lee"
    with pytest.raises(ValidationError, match="at most 200"):
        UserCreate.model_validate(_user(full_name="\t" + "a" * 200))


@pytest.mark.parametrize("blank", [" ", "\t \n"])
def test_a_name_of_whitespace_alone_is_refused(blank: str) -> None:
    with pytest.raises(ValidationError, match="must not be blank"):
        UserCreate.model_validate(_user(full_name=blank))
    with pytest.raises(ValidationError, match="must not be blank"):
        RuleIn.model_validate({"name": "Rent", "category": "rent", "keywords": [blank]})


def test_optional_text_may_be_whitespace_and_comes_back_empty() -> None:
    item = {"item_type": "ring", "gross_weight_g": "5", "description": "  "}
    assert ItemCreate.model_validate(item).description == ""


def test_passwords_keep_their_spaces() -> None:
    padded = "  correct horse battery  "
    assert UserCreate.model_validate(_user(password=padded)).password == padded
    change = PasswordChange.model_validate({"current_password": " x ", "new_password": padded})
    assert (change.current_password, change.new_password) == (" x ", padded)
    assert PasswordIn.model_validate({"password": " pdf "}).password == " pdf "


def test_a_regex_keeps_its_spaces() -> None:
    rule = RuleIn.model_validate({"name": "Rent", "category": "rent", "pattern": " rent "})
    assert rule.pattern == " rent "
