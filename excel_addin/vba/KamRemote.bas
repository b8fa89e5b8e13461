Attribute VB_Name = "KamRemote"
' KAM Rules: score the active sheet from desktop Excel through xlwings' RunRemotePython (no Python on the PC).
' Needs the xlwings VBA module (xlwings.bas, BSD licence, from `xlwings vba` or the xlwings add-in) in this
' workbook. URL and token may also come from a sheet named "xlwings.conf" (AUTH = "Bearer <token>").
' Notes on tier cells need our Office Script or the Python add-in; stock clients get notes=false.
Option Explicit

Const KAM_URL As String = "http://127.0.0.1:8080/xlwings/score-sheet?lang=zh&notes=false"

Sub ScoreSheet()
    Dim token As String
    token = Environ("KAM_TOKEN")
    RunRemotePython KAM_URL, auth:="Bearer " & token
End Sub
