"""The pages' words in 中文 and English, and the choice of language (session, then cookie, then the browser)."""

from __future__ import annotations

from typing import Any

from flask import request, session

LANGS = ("en", "zh")
COOKIE = "kam_lang"

# English text → 中文. A word missing here shows in English rather than failing the page.
ZH = {
    "KAM Rules": "大客户规则", "Rule book": "规则手册", "History": "变更历史", "Decisions": "决策记录",
    "Dashboard": "客户组合看板", "Evaluate": "试算", "Change requests": "变更申请", "Sign in": "登录",
    "Sign out": "退出", "Token": "令牌", "Signed in as": "当前用户", "role": "角色",
    "Paste the API token an admin gave you (kam token create).": "请粘贴管理员发给您的 API 令牌（kam token create）。",
    "The token is unknown or revoked.": "令牌无效或已被吊销。", "Area": "领域", "Rule": "规则", "Kind": "类型",
    "Description": "说明", "Last change": "最近修改", "Edit": "编辑", "Blame": "逐行追溯", "Source": "源文件",
    "Reads": "读取字段", "Outputs": "输出", "Rows": "规则行", "Revision": "版本", "Author": "作者", "Time": "时间",
    "Message": "说明", "Approver": "审批人", "Semantic diff": "语义差异", "Raw diff": "原始差异",
    "Revert to this revision": "回退到此版本", "Why revert?": "回退原因", "Element": "元素",
    "Look up": "查询", "Decision id": "决策编号", "Inputs": "输入", "Trace": "推理过程", "Reproduce": "复现",
    "Chain verification": "哈希链校验", "intact": "完好", "broken": "已损坏", "records": "条记录",
    "identical": "结果一致", "differs": "结果不同", "Actor": "操作人", "As of": "基准日",
    "Add row": "添加行", "Delete": "删除", "Up": "上移", "Down": "下移", "Check": "校验",
    "Impact preview": "影响预览", "Save": "保存", "Base revision": "基础版本", "Note": "备注",
    "Indicator": "指标", "Tier migration": "等级迁移", "Accounts whose results change": "结果变化的客户",
    "Account": "客户", "Field": "字段", "Before": "变更前", "After": "变更后", "Total": "合计",
    "Not saved: the rules changed since your base revision.": "未保存：您编辑期间规则已被他人修改。",
    "The other change": "他人的修改", "Rebase my rows onto the head": "将我的修改应用到最新版本",
    "Saved as revision": "已保存为版本", "Sent for approval as change request": "已提交审批，变更申请",
    "All cells pass.": "所有单元格校验通过。", "Status": "状态", "Approve": "批准", "Reject": "驳回",
    "Reason": "原因", "Reviewer": "审核人", "open": "待审批", "approved": "已批准", "rejected": "已驳回",
    "Customer pyramid by tier": "客户等级金字塔", "Tier": "等级", "Accounts": "客户数", "Revenue": "销售额",
    "Pareto curve": "帕累托曲线", "Share of accounts": "客户占比", "Share of revenue": "销售额占比",
    "accounts make 80% of revenue": "的客户贡献 80% 销售额", "Credit utilisation": "信用额度使用率",
    "Accounts on warn or hold": "预警或冻结的客户", "Utilisation": "使用率", "Exposure": "敞口",
    "Credit status": "信用状态", "Segments and countermeasures": "客户细分与对策", "Segment": "细分",
    "Countermeasure": "对策", "From": "从", "To": "到", "Compare": "比较", "No portfolio loaded.": "尚无客户数据。",
    "Start the service with --demo or put portfolio.csv in the data dir.":
        "请用 --demo 启动服务，或把 portfolio.csv 放入数据目录。",
    "Result": "结果", "Explanation": "解释", "Errors": "错误", "JSON": "JSON",
    "Not allowed": "无权限", "Your role may not do this.": "您的角色无权执行此操作。", "Problem": "问题",
    "Band": "区间", "Points": "分值", "When": "条件", "The change": "本次修改", "nothing changes": "无变化",
    "Open change requests": "待审批的变更", "Changed files": "修改的文件", "summary": "摘要",
    "Credit status changes": "信用状态变化", "Entitlement changes": "权益变化", "Save with message": "填写说明并保存",
    "page loaded in": "页面生成用时", "Evaluated at revision": "计算所用版本", "Decision": "决策",
    "tiering": "客户分级", "segments": "客户细分", "entitlements": "客户权益", "credit": "信用管理",
    "loyalty": "忠诚度", "actions": "行动", "events": "事件", "other": "其他",
}


def lang() -> str:
    """The reader's language: chosen in this session, else remembered in the cookie, else the browser's."""
    chosen = session.get("lang") or request.cookies.get(COOKIE)
    if chosen in LANGS:
        return chosen
    return request.accept_languages.best_match(["zh", "en"], default="en") or "en"


def t(text: str) -> str:
    return ZH.get(text, text) if lang() == "zh" else text


def label(value: Any) -> str:
    """A `{zh, en}` label in the reader's language (falling back to the other), or the value as text."""
    if isinstance(value, dict):
        return str(value.get(lang()) or value.get("en") or value.get("zh") or "")
    return "" if value is None else str(value)
