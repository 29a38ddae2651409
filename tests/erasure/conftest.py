from tests.exports.conftest import export_dir, study_data  # noqa: F401
