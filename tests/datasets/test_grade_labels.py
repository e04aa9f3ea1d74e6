from multitask_dr.datasets.tjdr import TJDRDataset
from tests.datasets.tjdr_files import make_release


def test_grades_csv_is_read_and_bad_rows_reported(tmp_path):
    make_release(tmp_path)
    (tmp_path / "train" / "grades.csv").write_text("image,grade\n001,3\n002,x\n003,7\n")
    dataset = TJDRDataset(tmp_path, "train")
    assert [r.grade for r in dataset.records] == [3, -1, -1]
    assert len(dataset.problems) == 2
