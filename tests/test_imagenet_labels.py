"""ImageNet class labels for the class-conditional models: ids, names and their errors."""

import pytest

from argen.errors import UsageError
from argen.modalities.image.imagenet import NUM_CLASSES, class_index, class_name, classes


def test_the_label_list_has_the_thousand_classes_in_order():
    assert len(classes()) == NUM_CLASSES
    assert classes()[0][0] == "n01440764" and class_name(0) == "tench"
    assert class_name(207) == "golden retriever"
    assert len({s for s, _ in classes()}) == NUM_CLASSES


@pytest.mark.parametrize("label", ["207", 207, "golden_retriever", "Golden Retriever", "golden-retriever", "n02099601"])
def test_ids_names_and_synsets_resolve(label):
    assert class_index(label) == 207


def test_a_second_lemma_resolves_too():
    assert class_index("great_white_shark") == class_index("man-eater") == 2


@pytest.mark.parametrize("label, words", [("1000", "out of range"), ("-1", "out of range"),
                                          ("crane", "several"), ("golden_retreiver", "unknown")])
def test_bad_labels_are_usage_errors(label, words):
    with pytest.raises(UsageError, match=words) as e:
        class_index(label)
    if "retreiver" in label:
        assert "golden_retriever (207)" in e.value.hint
