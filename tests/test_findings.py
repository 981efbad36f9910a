import pytest

from cxrfail.findings import ALL_FINDINGS, COMPETITION_FINDINGS, canonical_finding, is_finding


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("Effusion", "Pleural Effusion"),
        ("prob_Effusion", "Pleural Effusion"),
        ("Pleural_Thickening", "Pleural Thickening"),
        ("prob_Pleural_Thickening", "Pleural Thickening"),
        ("pleural effusion", "Pleural Effusion"),
        ("Lung Lesion", "Lung Lesion"),
        ("Enlarged Cardiomediastinum", "Enlarged Cardiomediastinum"),
        ("EDEMA", "Edema"),
    ],
)
def test_spellings_map_onto_canonical_names(spelling, canonical):
    assert canonical_finding(spelling) == canonical


def test_unknown_name_is_refused_with_the_name():
    with pytest.raises(KeyError, match="Pneumonitis"):
        canonical_finding("Pneumonitis")
    assert not is_finding("patient_age")


def test_every_canonical_name_maps_to_itself():
    assert [canonical_finding(name) for name in ALL_FINDINGS] == list(ALL_FINDINGS)
    assert set(COMPETITION_FINDINGS) <= set(ALL_FINDINGS)


def test_derived_from_links_lung_lesion_with_mass_and_nodule_both_ways():
    from cxrfail.findings import derived_from

    assert derived_from("Lung Lesion") == {"Mass", "Nodule"}
    assert derived_from("Mass") == {"Lung Lesion"}
    assert derived_from("nodule") == {"Lung Lesion"}
    assert derived_from("Edema") == set()
    with pytest.raises(KeyError, match="Smoker"):
        derived_from("Smoker")
