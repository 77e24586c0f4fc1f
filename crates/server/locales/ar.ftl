# صفحات تسجيل الدخول والحساب في Iaso، باللغة العربية (Arabic). الكتالوج المرجعي هو en.ftl:
# لكل لغة معرّفات الرسائل نفسها، وأي رسالة ناقصة هنا تُؤخذ من ذلك الملف.
lang-name = العربية
site-name = Iaso
skip-to-content = الانتقال إلى المحتوى
language = اللغة

login-title = تسجيل الدخول
login-email = البريد الإلكتروني
login-password = كلمة المرور
login-submit = تسجيل الدخول
login-refused = البريد الإلكتروني أو كلمة المرور غير صحيحة.
login-locked = محاولات كثيرة جدًا. حاول مرة أخرى بعد { $minutes ->
    [zero] { $minutes } دقيقة
    [one] دقيقة واحدة
    [two] دقيقتين
    [few] { $minutes } دقائق
    [many] { $minutes } دقيقة
   *[other] { $minutes } دقيقة
}.
login-disabled = هذا الحساب معطّل. تواصل مع عيادتك.
login-busy = الخادم مشغول. حاول مرة أخرى بعد قليل.
login-signed-out = تم تسجيل خروجك.
login-expired = انتهت جلستك. سجّل الدخول مرة أخرى.

mfa-title = التحقق بخطوتين
mfa-intro = أدخل الرمز المكوّن من 6 أرقام من تطبيق المصادقة، أو أحد رموزك الاحتياطية.
mfa-code = الرمز
mfa-submit = تحقّق
mfa-refused = هذا الرمز غير صحيح، أو سبق استخدامه.
mfa-cancel = إلغاء وتسجيل الخروج

account-title = أمان الحساب
account-signed-in-as = تم تسجيل الدخول باسم { $email }
account-sessions = الأماكن التي سجّلت الدخول منها
account-session-this = هذا المتصفح
account-session-started = تسجيل الدخول: { $when }
account-session-seen = آخر نشاط: { $when }
account-session-from = من { $address }
account-session-revoke = تسجيل الخروج من هذه الجلسة
account-session-revoked = تم تسجيل الخروج من الجلسة.
account-mfa = التحقق بخطوتين
account-mfa-on = مفعّل. الرموز الاحتياطية المتبقية: { $left }.
account-mfa-off = غير مفعّل.
account-mfa-enable = تفعيل التحقق بخطوتين
account-mfa-disable = إيقاف التحقق بخطوتين
account-mfa-required = يتطلب دورك التحقق بخطوتين؛ ولا يمكن إيقافه.
account-password = كلمة المرور
account-password-change = تغيير كلمة المرور
account-sign-out = تسجيل الخروج
account-recent = النشاط الأخير

enrol-title = إعداد التحقق بخطوتين
enrol-required = يتطلب دورك التحقق بخطوتين. قم بإعداده للمتابعة.
enrol-step-scan = امسح رمز QR هذا باستخدام تطبيق المصادقة، أو أدخل المفتاح يدويًا.
enrol-key = المفتاح
enrol-step-confirm = ثم أدخل الرمز المكوّن من 6 أرقام الذي يعرضه التطبيق.
enrol-submit = تفعيل
enrol-refused = هذا الرمز غير صحيح. تحقّق من الوقت على هاتفك وجرّب أحدث رمز.

codes-title = رموزك الاحتياطية
codes-intro = يتيح لك كل رمز تسجيل الدخول مرة واحدة إذا فقدت هاتفك. احفظها في مكان آمن: لن تُعرض مرة أخرى.
codes-done = لقد حفظتها

disable-title = إيقاف التحقق بخطوتين
disable-intro = أدخل كلمة المرور لإيقاف التحقق بخطوتين.
disable-submit = إيقاف
disable-refused = كلمة المرور غير صحيحة.
disable-done = تم إيقاف التحقق بخطوتين.

password-title = تغيير كلمة المرور
password-current = كلمة المرور الحالية
password-new = كلمة المرور الجديدة
password-confirm = تأكيد كلمة المرور الجديدة
password-hint = 12 حرفًا على الأقل. بضع كلمات لا رابط بينها تصنع كلمة مرور طويلة وسهلة التذكّر.
password-submit = تغيير كلمة المرور
password-wrong-current = كلمة المرور الحالية غير صحيحة.
password-mismatch = كلمتا المرور الجديدتان غير متطابقتين.
password-changed = تم تغيير كلمة المرور وتسجيل الخروج من جلساتك الأخرى.
password-too-short = استخدم { $min } حرفًا على الأقل.
password-too-long = استخدم { $max } حرفًا على الأكثر.
password-too-common = تظهر كلمة المرور هذه في قوائم كلمات المرور المسرّبة. اختر كلمة أخرى.
password-contains-email = لا تستخدم عنوان بريدك الإلكتروني في كلمة المرور.

error-title = حدث خطأ ما
error-csrf = انتهت صلاحية هذا النموذج. ارجع، وأعد تحميل الصفحة، ثم حاول مرة أخرى.
error-rate = طلبات كثيرة جدًا. انتظر قليلًا ثم حاول مرة أخرى.
error-internal = تعذّر على الخادم إكمال هذا الطلب. حاول مرة أخرى لاحقًا.
error-back = العودة إلى تسجيل الدخول
