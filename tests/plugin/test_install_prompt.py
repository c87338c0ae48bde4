"""The desktop side of the installer: the first-run offer, its question box, and the plugin's menu entry."""
from __future__ import annotations

import pytest
from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QCoreApplication, QTimer
from qgis.PyQt.QtWidgets import QApplication, QMessageBox

from sure_fusion_qgis import install_prompt
from sure_fusion_qgis.plugin import MENU, SureFusionPlugin


@pytest.fixture
def settings():
    QgsSettings().remove(install_prompt.DO_NOT_ASK)
    yield QgsSettings()
    QgsSettings().remove(install_prompt.DO_NOT_ASK)


class Recorder:
    def __init__(self, answer=(False, False)):
        self.answer, self.asked, self.opened = answer, 0, 0

    def ask(self, parent):
        self.asked += 1
        return self.answer

    def open(self):
        self.opened += 1


def offer(recorder):
    return install_prompt.offer_at_first_run(None, ask=recorder.ask, open_installer=recorder.open)


def test_no_offer_when_the_packages_are_there(settings):
    recorder = Recorder((True, False))
    assert not offer(recorder) and recorder.asked == 0


def test_offer_opens_the_installer(settings, monkeypatch):
    monkeypatch.setattr(install_prompt.dependencies, "look_installed", lambda: False)
    recorder = Recorder((True, False))
    assert offer(recorder)
    assert (recorder.asked, recorder.opened) == (1, 1)
    assert not settings.value(install_prompt.DO_NOT_ASK, False, type=bool)


def test_do_not_ask_again_is_remembered(settings, monkeypatch):
    monkeypatch.setattr(install_prompt.dependencies, "look_installed", lambda: False)
    recorder = Recorder((False, True))
    assert offer(recorder) and recorder.opened == 0
    assert not offer(recorder) and recorder.asked == 1


def test_the_question_box_answers():
    def answer():
        box = QApplication.activeModalWidget()
        box.checkBox().setChecked(True)
        box.button(QMessageBox.StandardButton.Yes).click()

    QTimer.singleShot(200, answer)
    assert install_prompt.ask(None) == (True, True)


def test_the_plugin_menu_entry(qgis_iface, monkeypatch):
    menus = []
    monkeypatch.setattr(qgis_iface, "addPluginToMenu", lambda name, action: menus.append((name, action)),
                        raising=False)
    monkeypatch.setattr(qgis_iface, "removePluginMenu", lambda name, action: menus.remove((name, action)),
                        raising=False)
    monkeypatch.setattr(SureFusionPlugin, "initProcessing", lambda self: None)  # the session's provider stays
    opened = []
    monkeypatch.setattr(install_prompt, "open_installer", lambda: opened.append(True))
    monkeypatch.setattr(install_prompt, "offer_at_first_run", lambda parent: opened.append("offer"))

    plugin = SureFusionPlugin(qgis_iface)
    plugin.initGui()
    QCoreApplication.processEvents()   # the first-run offer waits for the event loop
    assert opened == ["offer"]
    ((name, action),) = menus
    assert name == MENU and action.text() == "Install Python dependencies…"
    action.trigger()
    assert opened == ["offer", True]
    plugin.unload()
    assert menus == []
